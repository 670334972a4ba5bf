"""The one normalised record every carbon-intensity provider returns, and the fallback event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Signal = Literal["average", "marginal"]

# The furthest any forecast reaches: no provider knows the grid this far ahead, and every series
# built from a forecast (a provider's readings, the forecaster's slots, a green window's grid) is
# at most this long, whatever a caller (a job's deadline) asks for. Matches the planner's cap.
MAX_FORECAST_HOURS = 45 * 24


def capped_hours(hours: float) -> float:
    """``hours`` within [0, MAX_FORECAST_HOURS] (NaN, infinity and huge values give the cap)."""
    if not hours == hours or hours > MAX_FORECAST_HOURS:  # NaN compares unequal to itself
        return float(MAX_FORECAST_HOURS)
    return max(0.0, float(hours))


# 1 lb/MWh = 453.592 g / 1000 kWh (WattTime reports MOER in lbs CO2 per MWh).
G_PER_KWH_PER_LB_PER_MWH = 0.453592


def ensure_utc(moment: datetime, what: str = "timestamp") -> datetime:
    """Return `moment` in UTC; naive datetimes are rejected (they hide a time-zone bug)."""
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def parse_utc(text: str, what: str = "timestamp") -> datetime:
    """Parse the ISO-8601 forms the providers use ('2018-01-20T12:00Z', '...+00:00', '.000Z')."""
    cleaned = text.strip()
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise ValueError(f"{what} {text!r} is not an ISO-8601 time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class CarbonReading:
    """Grid carbon intensity at one time, in gCO2eq/kWh, as any provider reports it."""

    carbon_intensity_g_per_kwh: float
    timestamp: datetime
    source: str
    signal: Signal = "average"
    is_forecast: bool = False

    def __post_init__(self) -> None:
        value = self.carbon_intensity_g_per_kwh
        if not isinstance(value, int | float) or value != value or value < 0:
            raise ValueError(f"carbon_intensity_g_per_kwh must be a number >= 0, got {value!r}")
        object.__setattr__(self, "carbon_intensity_g_per_kwh", float(value))
        object.__setattr__(self, "timestamp", ensure_utc(self.timestamp))
        if self.signal not in ("average", "marginal"):
            raise ValueError(f"signal must be 'average' or 'marginal', got {self.signal!r}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (what the worker stores next to each epoch)."""
        return {
            "carbon_intensity_g_per_kwh": self.carbon_intensity_g_per_kwh,
            "timestamp": self.timestamp.isoformat(),
            "source": self.source,
            "signal": self.signal,
            "is_forecast": self.is_forecast,
        }


@dataclass(frozen=True)
class ProviderFailure:
    provider: str
    reason: str


@dataclass(frozen=True)
class FallbackEvent:
    """Recorded when a fallback chain had to skip providers: 'provider X failed, used Y'."""

    at: datetime
    failed: tuple[ProviderFailure, ...]
    used: str
    kind: str = "carbon_provider_fallback"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        failed = "; ".join(f"provider {f.provider} failed ({f.reason})" for f in self.failed)
        return f"{failed}; used {self.used}"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "at": self.at.isoformat(),
            "message": self.message,
            "failed": [{"provider": f.provider, "reason": f.reason} for f in self.failed],
            "used": self.used,
        }
