"""Electricity Maps v3 (header `auth-token`): latest and forecast for a zone; average signal."""

from __future__ import annotations

from greentrainer_carbon.errors import ProviderDataMissing, ProviderResponseError
from greentrainer_carbon.providers.base import CarbonProvider, field, number_or_none
from greentrainer_carbon.readings import CarbonReading, capped_hours, parse_utc
from greentrainer_carbon.retrying_http import RetryingHTTP

ELECTRICITY_MAPS_BASE_URL = "https://api.electricitymap.org/v3"


class ElectricityMapsProvider(CarbonProvider):
    def __init__(
        self,
        token: str,
        zone: str,
        http: RetryingHTTP | None = None,
        *,
        base_url: str = ELECTRICITY_MAPS_BASE_URL,
    ) -> None:
        if not token:
            raise ValueError(
                "Electricity Maps needs an auth token (GREENTRAINER_ELECTRICITYMAPS_TOKEN)"
            )
        if not zone:
            raise ValueError("zone must be an Electricity Maps zone code such as 'GB' or 'FR'")
        self._token = token
        self.zone = zone
        self.name = f"electricitymaps:{zone}"
        self.http = http or RetryingHTTP(self.name, base_url)

    def __repr__(self) -> str:
        return f"ElectricityMapsProvider(zone={self.zone!r}, token=***, url={self.http.base_url!r})"

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str) -> object:
        return self.http.get_json(
            path, params={"zone": self.zone}, headers={"auth-token": self._token}
        )

    def latest(self) -> CarbonReading:
        path = "carbon-intensity/latest"
        body = self._get(path)
        value = number_or_none(field(body, "carbonIntensity", self.name, path), self.name, path)
        if value is None:
            raise ProviderDataMissing(self.name, f"{path}: carbonIntensity is null")
        when = parse_utc(str(field(body, "datetime", self.name, path)), f"{path}.datetime")
        return CarbonReading(value, when, self.name, "average", is_forecast=False)

    def forecast(self, hours: float = 24.0) -> list[CarbonReading]:
        path, hours = "carbon-intensity/forecast", capped_hours(hours)
        points = field(self._get(path), "forecast", self.name, path)
        if not isinstance(points, list):
            raise ProviderResponseError(self.name, f"{path}: 'forecast' is not a list")
        readings: list[CarbonReading] = []
        for point in points:
            value = number_or_none(
                field(point, "carbonIntensity", self.name, path), self.name, path
            )
            if value is None:
                continue
            when = parse_utc(str(field(point, "datetime", self.name, path)), f"{path}.datetime")
            readings.append(CarbonReading(value, when, self.name, "average", is_forecast=True))
        if readings:
            first = readings[0].timestamp.timestamp()
            readings = [r for r in readings if r.timestamp.timestamp() - first < hours * 3600]
        return readings
