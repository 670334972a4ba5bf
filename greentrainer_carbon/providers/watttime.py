"""WattTime v3: GET /login (HTTP Basic) -> bearer token; MOER in lbs/MWh converted to g/kWh.

The token is cached and refreshed once on 401. The current value is the first point of
`/v3/forecast` (WattTime's forecast starts at the present 5-minute interval).
"""

from __future__ import annotations

from greentrainer_carbon.errors import ProviderDataMissing, ProviderResponseError
from greentrainer_carbon.providers.base import CarbonProvider, Clock, field, number_or_none, utc_now
from greentrainer_carbon.readings import (
    G_PER_KWH_PER_LB_PER_MWH,
    CarbonReading,
    Signal,
    capped_hours,
    parse_utc,
)
from greentrainer_carbon.retrying_http import RetryingHTTP

WATTTIME_BASE_URL = "https://api.watttime.org"

# Units WattTime may report -> factor to gCO2/kWh (1 kg/MWh = 1 g/kWh).
_UNIT_FACTORS = {
    "lbs_co2_per_mwh": G_PER_KWH_PER_LB_PER_MWH,
    "kg_co2_per_mwh": 1.0,
    "g_co2_per_kwh": 1.0,
}


class WattTimeProvider(CarbonProvider):
    def __init__(
        self,
        username: str,
        password: str,
        region: str,
        http: RetryingHTTP | None = None,
        *,
        signal_type: str = "co2_moer",
        base_url: str = WATTTIME_BASE_URL,
        clock: Clock = utc_now,
    ) -> None:
        if not username or not password:
            raise ValueError("WattTime needs GREENTRAINER_WATTTIME_USERNAME and _PASSWORD")
        if signal_type not in ("co2_moer", "co2_aoer"):
            raise ValueError(f"signal_type must be 'co2_moer' or 'co2_aoer', got {signal_type!r}")
        self._credentials = (username, password)
        self._token: str | None = None
        self.region = region
        self.signal_type = signal_type
        self.name = f"watttime:{region}"
        self.http = http or RetryingHTTP(self.name, base_url)
        self.clock = clock

    def __repr__(self) -> str:
        return f"WattTimeProvider(region={self.region!r}, signal={self.signal_type!r}, auth=***)"

    def close(self) -> None:
        self.http.close()

    def _login(self) -> dict[str, str]:
        body = self.http.get_json("/login", auth=self._credentials)
        token = field(body, "token", self.name, "/login")
        if not isinstance(token, str) or not token:
            raise ProviderResponseError(self.name, "/login: empty token")
        self._token = token
        return {"Authorization": f"Bearer {token}"}

    def _get(self, path: str, params: dict[str, object]) -> object:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else self._login()
        return self.http.get_json(path, params=params, headers=headers, retry_on_401=self._login)

    def _points(self, horizon_hours: float) -> list[CarbonReading]:
        path = "/v3/forecast"
        body = self._get(
            path,
            {
                "region": self.region,
                "signal_type": self.signal_type,
                "horizon_hours": int(round(horizon_hours)),
            },
        )
        units = str(field(field(body, "meta", self.name, path), "units", self.name, path + ".meta"))
        if units not in _UNIT_FACTORS:
            raise ProviderResponseError(self.name, f"{path}: unknown units {units!r}")
        data = field(body, "data", self.name, path)
        if not isinstance(data, list):
            raise ProviderResponseError(self.name, f"{path}: 'data' is not a list")
        signal: Signal = "marginal" if self.signal_type == "co2_moer" else "average"
        now = self.clock()
        readings = []
        for point in data:
            value = number_or_none(field(point, "value", self.name, path), self.name, path)
            if value is None:
                continue
            when = parse_utc(str(field(point, "point_time", self.name, path)), f"{path}.point_time")
            readings.append(
                CarbonReading(
                    value * _UNIT_FACTORS[units], when, self.name, signal, is_forecast=when > now
                )
            )
        return readings

    def latest(self) -> CarbonReading:
        points = self._points(1)  # the smallest horizon surely accepted; its first point is now
        if not points:
            raise ProviderDataMissing(self.name, "/v3/forecast: no point with a value")
        return points[0]

    def forecast(self, hours: float = 24.0) -> list[CarbonReading]:
        return self._points(capped_hours(hours))
