"""Outlooks: what a rho schedule may know at a decision time, from live providers or from a trace.

Both produce the same `Outlook`, so the schedules (and the policy under them) are the same code
in production and in the simulator.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import UTC, datetime, timedelta

import numpy as np

from greentrainer_carbon.errors import AllProvidersFailed
from greentrainer_carbon.forecast import forecast_from_history, oracle_forecast
from greentrainer_carbon.providers import ProviderChain
from greentrainer_carbon.readings import CarbonReading, ensure_utc
from greentrainer_carbon.schedule import Outlook
from greentrainer_carbon.windows import readings_to_grid

SLOTS_PER_HOUR = 2
DEFAULT_SAFETY_FACTOR = 1.1  # pessimistic intensity = reference max x this (budget reserve)


def epoch_means(forecast: np.ndarray, offsets_slots: np.ndarray, epoch_slots: float) -> np.ndarray:
    """Mean forecast over [o, o + epoch_slots) for each offset (fractional slots allowed)."""
    f = np.asarray(forecast, dtype=float)
    filled = np.where(np.isnan(f), np.nanmean(f) if np.any(~np.isnan(f)) else 0.0, f)
    cumulative = np.concatenate(([0.0], np.cumsum(filled)))
    positions = np.arange(f.size + 1, dtype=float)
    starts = np.asarray(offsets_slots, dtype=float)
    ends = np.minimum(starts + epoch_slots, f.size)
    starts = np.minimum(starts, ends - 1e-9)
    width = np.maximum(ends - starts, 1e-9)
    means: np.ndarray = (
        np.interp(ends, positions, cumulative) - np.interp(starts, positions, cumulative)
    ) / width
    return means


class ChainOutlook:
    """Live outlook from a provider chain; keeps the readings it saw as the region's recent past.

    The reference distribution is the last `history_days` of observed readings plus the provider's
    forecast; where the provider has no forecast, the daily-profile model fills it from the history.
    """

    def __init__(
        self,
        chain: ProviderChain,
        history_days: float = 7.0,
        safety_factor: float = DEFAULT_SAFETY_FACTOR,
    ) -> None:
        self.chain = chain
        self.history: deque[CarbonReading] = deque(
            maxlen=int(history_days * 24 * SLOTS_PER_HOUR * 4)
        )
        self.history_days = history_days
        self.safety_factor = safety_factor

    def _history_grid(self, now: datetime) -> np.ndarray:
        n = int(self.history_days * 24 * SLOTS_PER_HOUR)
        start = now - timedelta(minutes=30 * (n - 1))
        return readings_to_grid(list(self.history), start, n)

    def observe(self, now: datetime, epochs_after_this: int, epoch_hours: float) -> Outlook:
        now = ensure_utc(now)
        live = self.chain.latest()
        self.history.append(live.value)
        epoch_slots = epoch_hours * SLOTS_PER_HOUR
        horizon = max(48, math.ceil((epochs_after_this + 1) * epoch_slots) + 1)
        try:
            result = self.chain.forecast(horizon / SLOTS_PER_HOUR)
            grid = readings_to_grid(result.value, now, horizon)
            event = live.event or result.event
        except AllProvidersFailed:
            grid, event = np.full(horizon, np.nan), live.event
        history = self._history_grid(now)
        if np.isnan(grid).any():
            modelled = (
                forecast_from_history(history, horizon) if np.any(~np.isnan(history)) else None
            )
            grid = np.where(np.isnan(grid), modelled if modelled is not None else np.nan, grid)
        grid[0] = live.value.carbon_intensity_g_per_kwh
        grid = np.where(np.isnan(grid), grid[0], grid)
        reference = np.concatenate((history[~np.isnan(history)], grid))
        upcoming = epoch_means(grid, epoch_slots * np.arange(1, epochs_after_this + 1), epoch_slots)
        return Outlook(
            live.value, reference, upcoming, float(np.max(reference)) * self.safety_factor, event
        )


class TraceOutlook:
    """Simulation outlook over a trace: live = the trace's slot value; forecasts from a matrix
    made with the daily-profile model (non-peeking) or the oracle. `planned_offsets_slots`, when
    set by the simulator, places the upcoming epochs (pausable jobs); else they run back to back.
    """

    def __init__(
        self,
        values: np.ndarray,
        start: datetime,
        forecast_rows: np.ndarray,
        first_row_slot: int,
        history_slots: int = 7 * 48,
        safety_factor: float = DEFAULT_SAFETY_FACTOR,
        source: str = "trace",
    ) -> None:
        self.values = np.asarray(values, dtype=float)
        self.start = ensure_utc(start)
        self.forecast_rows = forecast_rows
        self.first_row_slot = first_row_slot
        self.history_slots = history_slots
        self.safety_factor = safety_factor
        self.source = source
        self.planned_offsets_slots: np.ndarray | None = None

    def slot_of(self, now: datetime) -> int:
        return int((ensure_utc(now) - self.start).total_seconds() // 1800)

    def time_of(self, slot: float) -> datetime:
        return self.start + timedelta(minutes=30 * float(slot))

    def forecast_row(self, slot: int) -> np.ndarray:
        row: np.ndarray = self.forecast_rows[slot - self.first_row_slot]
        return row

    def observe(self, now: datetime, epochs_after_this: int, epoch_hours: float) -> Outlook:
        slot = self.slot_of(now)
        live = CarbonReading(
            float(self.values[slot]), now.astimezone(UTC), self.source, "average", False
        )
        row = self.forecast_row(slot)
        history = self.values[max(0, slot - self.history_slots) : slot + 1]
        reference = np.concatenate((history[~np.isnan(history)], row[1:][~np.isnan(row[1:])]))
        epoch_slots = epoch_hours * SLOTS_PER_HOUR
        offsets = self.planned_offsets_slots
        if offsets is None or len(offsets) != epochs_after_this:
            offsets = epoch_slots * np.arange(1, epochs_after_this + 1)
        upcoming = epoch_means(row, np.asarray(offsets, dtype=float), epoch_slots)
        return Outlook(live, reference, upcoming, float(np.max(reference)) * self.safety_factor)


def oracle_rows(values: np.ndarray, first_slot: int, last_slot: int, horizon: int) -> np.ndarray:
    """Oracle forecast matrix for decision slots first..last (inclusive)."""
    return oracle_forecast(values, np.arange(first_slot, last_slot + 1), horizon)
