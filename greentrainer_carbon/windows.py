"""Green windows: when to start (or, for pausable jobs, where to put each epoch) by a deadline.

A window is scored by its expected emissions over the job's whole duration, i.e. the integral
of the forecast intensity over [start, start + duration) (a rolling mean), never by the single
cleanest point. Forecast arrays are on a 30-minute grid whose index 0 is the decision time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from greentrainer_carbon.errors import WindowError
from greentrainer_carbon.readings import MAX_FORECAST_HOURS, CarbonReading, ensure_utc

SLOT_HOURS = 0.5


def estimate_duration_s(
    total_flops: float, throughput_flops_per_s: float, rho: float = 1.0
) -> float:
    """Wall time of a job: rho * total_flops / measured pool throughput. Raises ValueError."""
    if total_flops <= 0:
        raise ValueError(f"total_flops must be > 0, got {total_flops}")
    if throughput_flops_per_s <= 0:
        raise ValueError(f"throughput_flops_per_s must be > 0, got {throughput_flops_per_s}")
    if not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho}")
    return rho * total_flops / throughput_flops_per_s


def window_integrals(forecast: np.ndarray, duration_slots: float, n_starts: int) -> np.ndarray:
    """[n_starts] integral of the piecewise-constant forecast over [s, s + duration) for s = 0..n-1.

    Unit: (g/kWh) x slots. NaN when the window touches a missing forecast value or runs past it.
    """
    f = np.asarray(forecast, dtype=float)
    cumulative = np.concatenate(([0.0], np.cumsum(np.nan_to_num(f))))
    missing = np.concatenate(([0], np.cumsum(np.isnan(f))))
    starts = np.arange(n_starts, dtype=float)
    ends = starts + duration_slots
    positions = np.arange(f.size + 1, dtype=float)
    integral = np.interp(ends, positions, cumulative) - cumulative[:n_starts]
    last_slot = np.ceil(ends - 1e-9).astype(np.int64)
    beyond = last_slot > f.size
    gaps = missing[np.clip(last_slot, 0, f.size)] - missing[:n_starts] > 0
    return np.where(beyond | gaps, np.nan, integral)


def best_start_slot(forecast: np.ndarray, duration_slots: float, latest_start_slot: int) -> int:
    """Start slot in [0, latest_start_slot] with the smallest expected emissions (earliest on ties).

    Start now (0) when no window has a complete forecast. Raises WindowError if latest < 0.
    """
    if latest_start_slot < 0:
        raise WindowError(
            "the deadline is already too close to run the job (latest start is in the past)"
        )
    n_starts = min(latest_start_slot + 1, max(1, np.asarray(forecast).size))
    scores = window_integrals(forecast, duration_slots, n_starts)
    if np.all(np.isnan(scores)):
        return 0
    return int(np.nanargmin(scores))


def plan_epoch_starts(
    forecast: np.ndarray, epoch_slots: float, n_epochs: int, last_end_slot: float
) -> list[int]:
    """Start slots for n pausable epochs, in order, non-overlapping, all ending by `last_end_slot`,
    minimising the summed expected emissions (dynamic programme over slot starts).

    Raises WindowError when the epochs cannot fit before `last_end_slot`.
    """
    step = max(1, math.ceil(epoch_slots - 1e-9))
    n_starts = int(math.floor(last_end_slot - epoch_slots + 1e-9)) + 1
    if n_epochs <= 0 or n_starts <= 0 or (n_epochs - 1) * step >= n_starts:
        raise WindowError(
            f"{n_epochs} epochs of {epoch_slots * SLOT_HOURS:g} h do not fit before the deadline"
        )
    cost = window_integrals(forecast, epoch_slots, n_starts)
    fallback = np.nanmax(cost) if np.any(~np.isnan(cost)) else 0.0
    cost = np.where(np.isnan(cost), fallback + 1.0, cost)  # unknown windows only as a last resort
    best = cost.copy()
    choice = np.zeros((n_epochs, n_starts), dtype=np.int64)
    for j in range(1, n_epochs):
        prev_min = np.minimum.accumulate(best)
        prev_arg = _running_argmin(best)
        shifted = np.full(n_starts, np.inf)
        shifted[step:] = prev_min[:-step] if step < n_starts else np.inf
        choice[j, step:] = prev_arg[:-step] if step < n_starts else 0
        best = cost + shifted
    starts = [int(np.argmin(best))]
    for j in range(n_epochs - 1, 0, -1):
        starts.append(int(choice[j, starts[-1]]))
    return starts[::-1]


def _running_argmin(values: np.ndarray) -> np.ndarray:
    """Index of the minimum of values[: i + 1] for every i (earliest on ties)."""
    previous_min = np.concatenate(([np.inf], np.minimum.accumulate(values)[:-1]))
    new_minimum = np.where(values < previous_min, np.arange(values.size), 0)
    return np.maximum.accumulate(new_minimum)


@dataclass(frozen=True)
class WindowChoice:
    start: datetime
    expected_mean_g_per_kwh: float
    start_now: bool
    forecast_source: str


def readings_to_grid(
    readings: list[CarbonReading], now: datetime, horizon_slots: int
) -> np.ndarray:
    """Forecast readings -> 30-minute array from `now` (slot means; NaN where nothing is known)."""
    now = ensure_utc(now)
    sums, counts = np.zeros(horizon_slots), np.zeros(horizon_slots)
    for reading in readings:
        offset = (reading.timestamp - now).total_seconds() / 1800.0
        slot = math.floor(offset) if offset >= 0 else (0 if offset > -1 else -1)
        if 0 <= slot < horizon_slots:
            sums[slot] += reading.carbon_intensity_g_per_kwh
            counts[slot] += 1
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def choose_start(
    forecast: list[CarbonReading], now: datetime, duration: timedelta, deadline: datetime
) -> WindowChoice:
    """The start in [now, deadline - duration] minimising expected emissions; re-run it whenever the
    forecast changes (the caller keeps the job `waiting_for_green` until `start_now`).

    A deadline further than MAX_FORECAST_HOURS ahead is planned as if it were there: nothing is
    known beyond, and the grid searched stays bounded whatever the deadline.
    Raises WindowError when the job can no longer finish by the deadline.
    """
    return WindowPlanner(forecast, now).choose(duration, deadline)


class WindowPlanner:
    """`choose_start` for many jobs on one forecast (a scheduler pass plans thousands): the grid
    is built once, over at most MAX_FORECAST_HOURS, and for each job duration the window scores
    and their running minimum once; each job is then a look-up."""

    def __init__(self, forecast: list[CarbonReading], now: datetime) -> None:
        self.now = ensure_utc(now)
        self.grid = readings_to_grid(forecast, self.now, MAX_FORECAST_HOURS * 2 + 1)
        self.source = forecast[0].source if forecast else "none"
        self._by_duration: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def _scores(self, duration_slots: float) -> tuple[np.ndarray, np.ndarray]:
        """(score of each start, the earliest best start among 0..s for each s)."""
        if duration_slots not in self._by_duration:
            scores = window_integrals(self.grid, duration_slots, self.grid.size)
            best = _running_argmin(np.where(np.isnan(scores), np.inf, scores))
            self._by_duration[duration_slots] = (scores, best)
        return self._by_duration[duration_slots]

    def choose(self, duration: timedelta, deadline: datetime) -> WindowChoice:
        """As `choose_start`. Raises WindowError when the job can no longer finish in time."""
        now, deadline = self.now, ensure_utc(deadline, "deadline")
        deadline = min(deadline, now + timedelta(hours=MAX_FORECAST_HOURS))
        slack_slots = math.floor((deadline - now - duration).total_seconds() / 1800.0 + 1e-9)
        if slack_slots < 0:
            raise WindowError(
                f"the job needs {duration} but only {deadline - now} remain before the deadline"
            )
        duration_slots = duration.total_seconds() / 1800.0
        scores, best = self._scores(duration_slots)
        slot = int(best[min(slack_slots, scores.size - 1)])  # all unknown: 0, start now
        mean = scores[slot] / duration_slots if duration_slots else np.nan
        return WindowChoice(now + timedelta(minutes=30 * slot), float(mean), slot == 0,
                            self.source)


def epoch_means(forecast: np.ndarray, offsets_slots: np.ndarray, epoch_slots: float) -> np.ndarray:
    """Mean forecast over [o, o + epoch_slots) for each offset (fractional slots allowed; NaN
    slots count as the forecast's mean)."""
    f = np.asarray(forecast, dtype=float)
    filled = np.where(np.isnan(f), np.nanmean(f) if np.any(~np.isnan(f)) else 0.0, f)
    cumulative = np.concatenate(([0.0], np.cumsum(filled)))
    positions = np.arange(f.size + 1, dtype=float)
    starts = np.asarray(offsets_slots, dtype=float)
    ends = np.minimum(starts + epoch_slots, f.size)
    starts = np.minimum(starts, ends - 1e-9)
    width = np.maximum(ends - starts, 1e-9)
    means: np.ndarray = (np.interp(ends, positions, cumulative)
                         - np.interp(starts, positions, cumulative)) / width
    return means
