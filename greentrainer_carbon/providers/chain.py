"""A TTL cache in front of a provider, and a fallback chain that records what it skipped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from greentrainer_carbon.errors import AllProvidersFailed, ProviderError
from greentrainer_carbon.history import SLOT_S
from greentrainer_carbon.providers.base import CarbonProvider, Clock, utc_now
from greentrainer_carbon.readings import (
    CarbonReading,
    FallbackEvent,
    ProviderFailure,
    capped_hours,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_CACHED_FORECASTS = 8  # distinct horizons kept by one CachedProvider


class CachedProvider(CarbonProvider):
    """Serves `latest` and `forecast` from memory for `ttl_s` seconds (public APIs cap calls),
    and never past the end of the 30-minute slot an answer was stored in: every carbon decision
    is made per slot (`greentrainer_carbon.history`), so a decision early in a slot reads that
    slot's reading, as the simulator does, never the previous slot's.

    Failures are not cached: the next call asks the provider again.
    """

    def __init__(
        self, provider: CarbonProvider, ttl_s: float = 300.0, clock: Clock = utc_now
    ) -> None:
        if ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s}")
        self.provider = provider
        self.ttl_s = ttl_s
        self.clock = clock
        self.name = provider.name
        self._lock = threading.Lock()
        self._latest: tuple[float, CarbonReading] | None = None
        self._forecasts: dict[float, tuple[float, list[CarbonReading]]] = {}

    def __repr__(self) -> str:
        return f"CachedProvider({self.provider!r}, ttl_s={self.ttl_s})"

    def close(self) -> None:
        self.provider.close()

    def _fresh(self, stored_at: float) -> bool:
        now = self.clock().timestamp()
        return now - stored_at < self.ttl_s and now // SLOT_S == stored_at // SLOT_S

    def latest(self) -> CarbonReading:
        with self._lock:
            if self._latest and self._fresh(self._latest[0]):
                return self._latest[1]
        reading = self.provider.latest()
        with self._lock:
            self._latest = (self.clock().timestamp(), reading)
        return reading

    def forecast(self, hours: float = 24.0) -> list[CarbonReading]:
        hours = capped_hours(hours)
        with self._lock:
            hit = self._forecasts.get(hours)
            if hit and self._fresh(hit[0]):
                return list(hit[1])
        readings = self.provider.forecast(hours)
        with self._lock:
            # a caller whose horizon moves each pass (a deadline) asks for new keys: keep a few
            while len(self._forecasts) >= MAX_CACHED_FORECASTS:
                del self._forecasts[next(iter(self._forecasts))]
            self._forecasts[hours] = (self.clock().timestamp(), list(readings))
        return readings


@dataclass(frozen=True)
class ChainResult(Generic[T]):
    """What a chain call produced: the value, which provider gave it, and the fallback event."""

    value: T
    used: str
    event: FallbackEvent | None


class ProviderChain:
    """Tries providers in order; the first that answers wins. A skip is reported as an event."""

    def __init__(self, providers: Sequence[CarbonProvider], clock: Clock = utc_now) -> None:
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        self.providers = list(providers)
        self.clock = clock

    def __repr__(self) -> str:
        return f"ProviderChain([{', '.join(p.name for p in self.providers)}])"

    def close(self) -> None:
        for provider in self.providers:
            provider.close()

    def _run(self, call: str, hours: float) -> ChainResult[Any]:
        failures: list[ProviderError] = []
        skipped: list[ProviderFailure] = []
        for provider in self.providers:
            try:
                value = provider.latest() if call == "latest" else provider.forecast(hours)
            except ProviderError as exc:
                log.warning("carbon provider %s failed: %s", provider.name, exc.reason)
                failures.append(exc)
                skipped.append(ProviderFailure(provider.name, exc.reason))
                continue
            if call == "forecast" and not value:
                failures.append(ProviderError(provider.name, "empty forecast"))
                skipped.append(ProviderFailure(provider.name, "empty forecast"))
                continue
            event = None
            if failures:
                event = FallbackEvent(
                    at=self.clock(),
                    failed=tuple(skipped),
                    used=provider.name,
                )
                log.warning("carbon provider fallback: %s", event.message)
            return ChainResult(value, provider.name, event)
        raise AllProvidersFailed(failures)

    def latest(self) -> ChainResult[CarbonReading]:
        """ChainResult whose value is a CarbonReading. Raises AllProvidersFailed."""
        return self._run("latest", 0.0)

    def forecast(self, hours: float = 24.0) -> ChainResult[list[CarbonReading]]:
        """ChainResult whose value is a non-empty list of readings, at most MAX_FORECAST_HOURS
        ahead. Raises AllProvidersFailed."""
        return self._run("forecast", capped_hours(hours))
