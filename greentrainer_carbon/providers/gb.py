"""GB National Grid ESO / NESO Carbon Intensity API (no key, CC BY 4.0), national or regional."""

from __future__ import annotations

from datetime import timedelta

from greentrainer_carbon.errors import ProviderDataMissing, ProviderResponseError
from greentrainer_carbon.providers.base import CarbonProvider, Clock, field, number_or_none, utc_now
from greentrainer_carbon.readings import CarbonReading, capped_hours, parse_utc
from greentrainer_carbon.retrying_http import RetryingHTTP

GB_API_BASE_URL = "https://api.carbonintensity.org.uk"


class GBCarbonIntensityProvider(CarbonProvider):
    """National (`region_id=None`) or one of the 17 regions (`region_id` 1..17; 13 = London).

    The national `actual` is used when present, else its `forecast` (then is_forecast=True);
    regional slots carry a forecast only, so regional readings are always marked forecasts.
    """

    def __init__(
        self,
        http: RetryingHTTP | None = None,
        *,
        region_id: int | None = None,
        base_url: str = GB_API_BASE_URL,
        clock: Clock = utc_now,
    ) -> None:
        if region_id is not None and not 1 <= region_id <= 17:
            raise ValueError(f"region_id must be 1..17 (GB regions), got {region_id}")
        self.region_id = region_id
        self.name = "gb-carbon-intensity" + ("" if region_id is None else f":region{region_id}")
        self.http = http or RetryingHTTP(self.name, base_url)
        self.clock = clock

    def __repr__(self) -> str:
        return (
            f"GBCarbonIntensityProvider(region_id={self.region_id!r}, url={self.http.base_url!r})"
        )

    def close(self) -> None:
        self.http.close()

    def _slots(self, body: object, where: str) -> list[object]:
        data = field(body, "data", self.name, where)
        if self.region_id is not None:
            # Regional answers nest the slots one level down: data[0].data or data.data.
            region = data[0] if isinstance(data, list) and data else data
            data = field(region, "data", self.name, where)
        if not isinstance(data, list):
            raise ProviderResponseError(self.name, f"{where}: 'data' is not a list")
        return data

    def _reading(self, slot: object, where: str, allow_actual: bool) -> CarbonReading | None:
        intensity = field(slot, "intensity", self.name, where)
        if not isinstance(intensity, dict):
            raise ProviderResponseError(self.name, f"{where}: 'intensity' is not an object")
        start = parse_utc(str(field(slot, "from", self.name, where)), f"{where}.from")
        actual = number_or_none(intensity.get("actual"), self.name, where) if allow_actual else None
        forecast = number_or_none(intensity.get("forecast"), self.name, where)
        value = actual if actual is not None else forecast
        if value is None:
            return None
        return CarbonReading(value, start, self.name, "average", is_forecast=actual is None)

    def latest(self) -> CarbonReading:
        path = "/intensity" if self.region_id is None else f"/regional/regionid/{self.region_id}"
        slots = self._slots(self.http.get_json(path), path)
        if not slots:
            raise ProviderDataMissing(self.name, f"{path}: no slot in the answer")
        reading = self._reading(slots[0], path, allow_actual=self.region_id is None)
        if reading is None:
            raise ProviderDataMissing(self.name, f"{path}: intensity is null")
        return reading

    def forecast(self, hours: float = 24.0) -> list[CarbonReading]:
        hours = capped_hours(hours)
        window = "fw24h" if hours <= 24 else "fw48h"
        start = self.clock().strftime("%Y-%m-%dT%H:%MZ")
        path = f"/intensity/{start}/{window}"
        if self.region_id is not None:
            path = f"/regional/intensity/{start}/{window}/regionid/{self.region_id}"
        end = self.clock() + timedelta(hours=hours)
        readings = []
        for slot in self._slots(self.http.get_json(path), path):
            reading = self._reading(slot, path, allow_actual=False)
            if reading is not None and reading.timestamp < end:
                readings.append(
                    CarbonReading(
                        reading.carbon_intensity_g_per_kwh,
                        reading.timestamp,
                        self.name,
                        "average",
                        is_forecast=True,
                    )
                )
        return readings
