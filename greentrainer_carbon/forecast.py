"""Intensity forecasts that only use data up to the decision time, and the perfect-forecast oracle.

Daily-profile model (non-peeking). At decision slot t (the live value of slot t is known),
the forecast for slot t+h, h >= 0, is

    f(t, h) = S_h(t+h) + (x_t - S_1(t)) * exp(-h * slot_hours / tau_hours),    f(t, 0) = x_t
    S_h(k)  = nanmean of x[k - 48 d] for d = m .. m + days - 1, d of k's day type,
              m = max(1, ceil(h / 48))

i.e. the mean of the same half-hour over the past `days` (28) calendar days that are already
observed and are of the target's day type (weekday or weekend, UTC), plus today's anomaly (the
live value's distance from its own profile) decaying with time constant tau (48 h: weather
regimes last a day or two). Without the series' absolute position (`first_slot`) every day counts.
Missing past values are skipped by the nanmean; with no past value the last observation is
carried.

The parameters were chosen away from the reported figures (docs/scheduler.md, "The forecast"):
28 days and the weekday/weekend split on January to March 2020 of the GB and FR traces (the
share of the oracle's saving kept by the forecast's cheapest slots of a 27- and 48-hour window),
tau = 48 h on the simulator with arrival seed 1 (the reported runs use seed 0).
"""

from __future__ import annotations

import numpy as np

SLOTS_PER_DAY = 48
DEFAULT_DAYS = 28
WEEKEND_FROM = 5  # Saturday (Monday = 0)
EPOCH_WEEKDAY = 3  # slot 0 (1970-01-01) is a Thursday
DEFAULT_TAU_HOURS = 48.0


def is_weekend(absolute_slots: np.ndarray) -> np.ndarray:
    """Whether each (UTC, since the Unix epoch) slot falls on a Saturday or a Sunday."""
    day = np.asarray(absolute_slots) // SLOTS_PER_DAY
    return np.asarray((day + EPOCH_WEEKDAY) % 7 >= WEEKEND_FROM)


def _seasonal(
    values: np.ndarray, targets: np.ndarray, first_day: np.ndarray, days: int,
    first_slot: int | None = None,
) -> np.ndarray:
    """nanmean of values[target - 48 d], d = first_day .. first_day+days-1 (out of range = NaN),
    only days of the target's day type when `first_slot` (values[0]'s absolute slot) is given."""
    d = first_day[..., None] + np.arange(days)
    idx = targets[..., None] - SLOTS_PER_DAY * d
    ok = idx >= 0
    if first_slot is not None:
        same = is_weekend(first_slot + idx) == is_weekend(first_slot + targets)[..., None]
        ok = ok & same
    picked = np.where(ok, values[np.clip(idx, 0, None)], np.nan)
    count = np.sum(~np.isnan(picked), axis=-1)
    total = np.nansum(picked, axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def daily_profile_forecast(
    values: np.ndarray,
    decision_slots: np.ndarray,
    horizon_slots: int,
    days: int = DEFAULT_DAYS,
    tau_hours: float = DEFAULT_TAU_HOURS,
    slot_hours: float = 0.5,
    first_slot: int | None = None,
) -> np.ndarray:
    """[len(decision_slots), horizon_slots] forecasts; row i reads values[: decision_slots[i] + 1].
    `first_slot`: the absolute slot of values[0] (weekday and weekend profiles apart), or None.

    `values` may extend beyond the decision slots (as in a simulation): indices past t are never
    read for row t (S_h uses k - 48 d <= t by the choice of m; the anomaly uses x_t).
    """
    x = np.asarray(values, dtype=float)
    t = np.asarray(decision_slots, dtype=np.int64)
    h = np.arange(horizon_slots)
    targets = t[:, None] + h[None, :]
    first_day = np.maximum(1, -(-h // SLOTS_PER_DAY))
    seasonal = _seasonal(x, targets, np.broadcast_to(first_day, targets.shape), days, first_slot)
    now_seasonal = _seasonal(x, t, np.ones_like(t), days, first_slot)
    live = x[t]
    last_seen = _last_observed(x)[t]
    anchor = np.where(np.isnan(live), last_seen, live)
    anomaly = np.where(np.isnan(now_seasonal), 0.0, anchor - now_seasonal)
    decay = np.exp(-h * slot_hours / tau_hours)
    out = seasonal + anomaly[:, None] * decay[None, :]
    out = np.where(np.isnan(out), anchor[:, None], out)
    out[:, 0] = anchor
    return out


def _last_observed(x: np.ndarray) -> np.ndarray:
    """x with each NaN replaced by the last earlier non-NaN value (NaN before the first)."""
    idx = np.where(~np.isnan(x), np.arange(x.size), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, x[np.clip(idx, 0, None)], np.nan)


def forecast_from_history(
    history_g_per_kwh: np.ndarray,
    horizon_slots: int,
    days: int = DEFAULT_DAYS,
    tau_hours: float = DEFAULT_TAU_HOURS,
    live_slot: int | None = None,
) -> np.ndarray:
    """Production entry: `history` is a 30-minute series whose last element is the live value,
    that of the absolute slot `live_slot` (None: no weekday/weekend distinction)."""
    history = np.asarray(history_g_per_kwh, dtype=float)
    first = None if live_slot is None else live_slot - (history.size - 1)
    forecast: np.ndarray = daily_profile_forecast(
        history, np.array([history.size - 1]), horizon_slots, days, tau_hours, first_slot=first
    )[0]
    return forecast


def oracle_forecast(
    values: np.ndarray, decision_slots: np.ndarray, horizon_slots: int
) -> np.ndarray:
    """The perfect forecast (what really happened): an upper bound, never a production forecast."""
    x = np.asarray(values, dtype=float)
    idx = np.asarray(decision_slots)[:, None] + np.arange(horizon_slots)[None, :]
    return np.where(idx < x.size, x[np.clip(idx, 0, x.size - 1)], np.nan)
