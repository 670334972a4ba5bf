"""Offline default: CodeCarbon's bundled per-country average carbon intensity (no network)."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from importlib import resources

from greentrainer_carbon.errors import ProviderDataMissing
from greentrainer_carbon.providers.base import CarbonProvider, Clock, utc_now
from greentrainer_carbon.readings import CarbonReading, capped_hours

_ENERGY_MIX = ("data", "private_infra", "global_energy_mix.json")


@lru_cache(maxsize=1)
def codecarbon_country_intensities() -> dict[str, float]:
    """ISO-3166 alpha-3 code -> gCO2eq/kWh, from the installed codecarbon package's data file."""
    resource = resources.files("codecarbon").joinpath(*_ENERGY_MIX)
    table = json.loads(resource.read_text(encoding="utf-8"))
    return {
        code: float(row["carbon_intensity"])
        for code, row in table.items()
        if isinstance(row, dict) and isinstance(row.get("carbon_intensity"), int | float)
    }


class StaticCountryProvider(CarbonProvider):
    """A constant yearly average; `forecast` repeats it every 30 minutes (no variation known)."""

    def __init__(self, country_iso3: str = "GBR", clock: Clock = utc_now) -> None:
        code = country_iso3.strip().upper()
        table = codecarbon_country_intensities()
        if code not in table:
            raise ValueError(
                f"country_iso3 {country_iso3!r} is not in CodeCarbon's data "
                f"(use an ISO-3166 alpha-3 code such as 'GBR' or 'FRA')"
            )
        self.country_iso3 = code
        self.value_g_per_kwh = table[code]
        self.name = f"codecarbon-static:{code}"
        self.clock = clock

    def __repr__(self) -> str:
        return f"StaticCountryProvider(country_iso3={self.country_iso3!r})"

    def latest(self) -> CarbonReading:
        if self.value_g_per_kwh != self.value_g_per_kwh:
            raise ProviderDataMissing(self.name, "no intensity for this country")
        return CarbonReading(self.value_g_per_kwh, self.clock(), self.name, "average", False)

    def forecast(self, hours: float = 24.0) -> list[CarbonReading]:
        now, hours = self.clock(), capped_hours(hours)
        return [
            CarbonReading(
                self.value_g_per_kwh, now + timedelta(minutes=30 * i), self.name, "average", True
            )
            for i in range(int(hours * 2))
        ]
