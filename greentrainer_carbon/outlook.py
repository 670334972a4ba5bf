"""`ChainOutlook`: what a rho schedule may know at a decision time, from the live providers
(`greentrainer scheduler`'s one-off decision; jobs decide through `greentrainer_carbon.planner`)."""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta

import numpy as np

from greentrainer_carbon.errors import AllProvidersFailed
from greentrainer_carbon.forecast import forecast_from_history
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
    return (
        np.interp(ends, positions, cumulative) - np.interp(starts, positions, cumulative)
    ) / width


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
