"""The intensity forecast every carbon decision reads, with the source of each slot.

    slot 0       the live reading                                        source "live"
    then         the provider's forecast, as far as it reaches           source "provider"
    beyond       the daily profile of the region's recorded history      source "history"
                 (the past 4 weeks, weekdays and weekends apart, plus the
                 live anomaly fading over 2 days: forecast.py), blended
                 into the provider's last value over a few slots
    else         the static yearly average (no history recorded yet)     source "static"

A chain whose answer is the static average's flat "forecast" counts as no forecast: a flat
yearly average is never passed off as the provider's view of the coming hours. What was missing
is said in `notes` (e.g. a deployment with no history yet), and each decision records the
sources it used (`SourcedForecast.source_hours`).

Production reads a `ProviderChain` (`ChainSource`) and the database's history; the simulator
reads a replayed trace through the same `Forecaster`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from greentrainer_carbon.errors import AllProvidersFailed
from greentrainer_carbon.forecast import DEFAULT_DAYS, SLOTS_PER_DAY, forecast_from_history
from greentrainer_carbon.history import SLOT_S, FloatArray, IntensityHistory, slot_of, slot_start
from greentrainer_carbon.providers.chain import ProviderChain
from greentrainer_carbon.readings import MAX_FORECAST_HOURS, CarbonReading, FallbackEvent

LIVE, PROVIDER, HISTORY, STATIC = 0, 1, 2, 3
SOURCE_NAMES = ("live", "provider", "history", "static")
STATIC_PREFIXES = ("codecarbon-static",)
HISTORY_DAYS = 7  # the past of the rho policy's reference distribution
PROFILE_DAYS = DEFAULT_DAYS  # the days the history profile is made of (forecast.py)
BLEND_SLOTS = 4  # the provider's last value fades into the history profile over 2 hours
NDArrayInt = NDArray[np.int8]  # a source code per slot
MAX_FORECAST_SLOTS = MAX_FORECAST_HOURS * 2  # no forecast is longer, whatever is asked
# The least forecast a decision reads (2 days): the rho policy's reference distribution is the
# past week plus the forecast, so every process (and the simulator) asks at least this much for
# the same moment to give the same reference whatever the job's own horizon.
REFERENCE_SLOTS = 96


@dataclass(frozen=True)
class SourceAnswer:
    """What an intensity source said at a decision time."""

    live: CarbonReading
    forecast_g_per_kwh: FloatArray  # [n] from the live slot on; NaN where the provider is silent
    static_g_per_kwh: float | None  # the static yearly average, when the source knows it
    events: tuple[FallbackEvent, ...] = ()


class IntensitySource(Protocol):
    def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
        """The live reading and the forecast for slots first_slot.. (first_slot = now's slot).
        Raises AllProvidersFailed when nothing answers."""
        ...


def readings_on_slots(readings: Sequence[CarbonReading], first_slot: int,
                      n_slots: int) -> FloatArray:
    """Slot means of readings over slots first_slot..first_slot+n-1 (NaN where none)."""
    sums, counts = np.zeros(n_slots), np.zeros(n_slots)
    for reading in readings:
        index = slot_of(reading.timestamp) - first_slot
        if 0 <= index < n_slots:
            sums[index] += reading.carbon_intensity_g_per_kwh
            counts[index] += 1
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


class ChainSource:
    """A provider chain as an intensity source (production)."""

    def __init__(self, chain: ProviderChain) -> None:
        self.chain = chain

    def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
        latest = self.chain.latest()
        events = [latest.event] if latest.event else []
        grid = np.full(n_slots, np.nan)
        try:
            ahead = self.chain.forecast(n_slots * SLOT_S / 3600.0)
            if ahead.event:
                events.append(ahead.event)
            if not ahead.used.startswith(STATIC_PREFIXES):
                grid = readings_on_slots(ahead.value, first_slot, n_slots)
        except AllProvidersFailed:
            pass
        return SourceAnswer(latest.value, grid, self._static(), tuple(events))

    def _static(self) -> float | None:
        for provider in reversed(self.chain.providers):
            if provider.name.startswith(STATIC_PREFIXES):
                return provider.latest().carbon_intensity_g_per_kwh
        return None


@dataclass(frozen=True)
class SourcedForecast:
    """[n] g/kWh from the live slot (`first_slot`) on, the source of each slot, the region's
    recorded past (the reference distribution of the rho policy) and what was missing."""

    first_slot: int
    g_per_kwh: FloatArray
    sources: NDArrayInt
    past_g_per_kwh: FloatArray  # [HISTORY_DAYS * 48] before the live slot, NaN where none
    live: CarbonReading
    notes: tuple[str, ...] = ()
    events: tuple[FallbackEvent, ...] = field(default=())

    @property
    def start(self) -> datetime:
        return slot_start(self.first_slot)

    def source_hours(self, first: int = 0, n: int | None = None) -> dict[str, float]:
        """Hours of each source over slots [first, first + n) of the forecast."""
        part = self.sources[first:] if n is None else self.sources[first:first + n]
        return {SOURCE_NAMES[code]: float(np.sum(part == code)) / 2.0
                for code in range(len(SOURCE_NAMES)) if np.any(part == code)}

    def reference(self) -> FloatArray:
        """The region's recent past and its forecast: what "clean" is relative to."""
        past = self.past_g_per_kwh[~np.isnan(self.past_g_per_kwh)]
        return np.concatenate((past, self.g_per_kwh))



class Forecaster:
    """Forecasts for one region from an intensity source and its recorded history."""

    def __init__(self, source: IntensitySource, history: IntensityHistory, region: str, *,
                 history_days: int = HISTORY_DAYS, blend_slots: int = BLEND_SLOTS,
                 cache_slots: int = 4, min_horizon_slots: int = 1,
                 profile_days: int = PROFILE_DAYS) -> None:
        self.source = source
        self.history = history
        self.region = region
        self.past_slots = history_days * 48
        self.profile_days = profile_days
        self.blend_slots = blend_slots
        self._cache: OrderedDict[int, SourcedForecast] = OrderedDict()
        self._cache_slots = cache_slots
        self.min_horizon_slots = min_horizon_slots

    def last_events(self) -> list[FallbackEvent]:
        """The provider fallbacks of the newest forecast made (none when none was made)."""
        if not self._cache:
            return []
        return list(next(reversed(self._cache.values())).events)

    def forecast(self, now: datetime, horizon_slots: int) -> SourcedForecast:
        """The forecast for the slots of [now, now + horizon), at most MAX_FORECAST_SLOTS long.
        Raises AllProvidersFailed."""
        first = slot_of(now)
        horizon = min(max(1, int(horizon_slots), self.min_horizon_slots), MAX_FORECAST_SLOTS)
        hit = self._cache.get(first)
        if hit is not None and hit.g_per_kwh.size >= horizon:
            # Trimmed to what was asked: the rho policy's reference includes the whole forecast,
            # so a decision must not depend on a longer one another job asked for before.
            return replace(hit, g_per_kwh=hit.g_per_kwh[:horizon], sources=hit.sources[:horizon])
        made = self._make(first, horizon)
        self._cache[first] = made
        while len(self._cache) > self._cache_slots:
            self._cache.popitem(last=False)
        return made

    def _make(self, first: int, horizon: int) -> SourcedForecast:
        answer = self.source.ask(first, horizon)
        live = answer.live.carbon_intensity_g_per_kwh
        # The profile's days: profile_days before every target slot (a target d days ahead reads
        # from d days back); the rho policy's reference reads the last past_slots of them.
        span = max(self.past_slots, SLOTS_PER_DAY * (self.profile_days - (-horizon // SLOTS_PER_DAY)))
        recorded = self.history.grid(self.region, first - span, span)
        past = recorded[span - self.past_slots:]
        values = np.asarray(answer.forecast_g_per_kwh, dtype=float)[:horizon].copy()
        if values.size < horizon:
            values = np.concatenate((values, np.full(horizon - values.size, np.nan)))
        sources = np.where(np.isnan(values), -1, PROVIDER).astype(np.int8)
        values[0], sources[0] = live, LIVE
        notes: list[str] = []
        gaps = np.isnan(values)
        if gaps.any():
            profile = self._profile(recorded, first, live, horizon)
            if profile is not None:
                values, sources = self._fill(values, sources, profile)
            elif answer.static_g_per_kwh is not None:
                notes.append(f"no intensity history is recorded for {self.region} yet: where the "
                             "provider gives no forecast, the static yearly average "
                             f"({answer.static_g_per_kwh:.0f} g/kWh) is assumed")
            else:
                notes.append(f"no intensity history is recorded for {self.region} yet and the "
                             "provider gives no forecast: the live value is assumed to hold")
        gaps = np.isnan(values)
        if gaps.any():
            level = answer.static_g_per_kwh if answer.static_g_per_kwh is not None else live
            values[gaps], sources[gaps] = level, STATIC
        return SourcedForecast(first, values, sources, past, answer.live, tuple(notes),
                               answer.events)

    def _profile(self, recorded: FloatArray, first: int, live: float,
                 horizon: int) -> FloatArray | None:
        if not np.any(~np.isnan(recorded)):
            return None
        series = np.concatenate((recorded, [live]))
        return np.asarray(forecast_from_history(series, horizon, self.profile_days,
                                                live_slot=first), dtype=float)

    def _fill(self, values: FloatArray, sources: NDArrayInt,
              profile: FloatArray) -> tuple[FloatArray, NDArrayInt]:
        """History where the provider is silent; right after a provider value, its difference
        from the profile fades out over `blend_slots` (no jump at the seam)."""
        out, codes = values.copy(), sources.copy()
        offset, fade = 0.0, 0
        for s in range(1, out.size):
            if not math.isnan(values[s]):
                offset, fade = values[s] - profile[s], self.blend_slots
                continue
            if fade > 0:
                out[s] = profile[s] + offset * fade / (self.blend_slots + 1)
                fade -= 1
            else:
                out[s] = profile[s]
            codes[s] = HISTORY
        return out, codes
