"""Intensity forecasts that only use data up to the decision time, and the perfect-forecast oracle.

Daily-profile model (non-peeking). At decision slot t (the live value of slot t is known),
the forecast for slot t+h, h >= 0, is

    f(t, h) = S_h(t+h) + (x_t - S_1(t)) * exp(-h * slot_hours / tau_hours),    f(t, 0) = x_t
    S_h(k)  = nanmean of x[k - 48 d] for d = m .. m + days - 1,  m = max(1, ceil(h / 48))

i.e. the mean of the same half-hour over the last `days` days that are already observed, plus
today's anomaly decaying with time constant tau (weather regimes last about a day). Missing
past values are skipped by the nanmean; with no past value the last observation is carried.
"""

from __future__ import annotations

import numpy as np

SLOTS_PER_DAY = 48
DEFAULT_DAYS = 7
DEFAULT_TAU_HOURS = 24.0


def _seasonal(
    values: np.ndarray, targets: np.ndarray, first_day: np.ndarray, days: int
) -> np.ndarray:
    """nanmean of values[target - 48 d], d = first_day .. first_day+days-1 (out of range = NaN)."""
    d = first_day[..., None] + np.arange(days)
    idx = targets[..., None] - SLOTS_PER_DAY * d
    ok = idx >= 0
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
) -> np.ndarray:
    """[len(decision_slots), horizon_slots] forecasts; row i reads values[: decision_slots[i] + 1].

    `values` may extend beyond the decision slots (as in a simulation): indices past t are never
    read for row t (S_h uses k - 48 d <= t by the choice of m; the anomaly uses x_t).
    """
    x = np.asarray(values, dtype=float)
    t = np.asarray(decision_slots, dtype=np.int64)
    h = np.arange(horizon_slots)
    targets = t[:, None] + h[None, :]
    first_day = np.maximum(1, -(-h // SLOTS_PER_DAY))
    seasonal = _seasonal(x, targets, np.broadcast_to(first_day, targets.shape), days)
    now_seasonal = _seasonal(x, t, np.ones_like(t), days)
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
) -> np.ndarray:
    """Production entry: `history` is a 30-minute series whose last element is the live value."""
    history = np.asarray(history_g_per_kwh, dtype=float)
    forecast: np.ndarray = daily_profile_forecast(
        history, np.array([history.size - 1]), horizon_slots, days, tau_hours
    )[0]
    return forecast


def oracle_forecast(
    values: np.ndarray, decision_slots: np.ndarray, horizon_slots: int
) -> np.ndarray:
    """The perfect forecast (what really happened): an upper bound, never a production forecast."""
    x = np.asarray(values, dtype=float)
    idx = np.asarray(decision_slots)[:, None] + np.arange(horizon_slots)[None, :]
    return np.where(idx < x.size, x[np.clip(idx, 0, x.size - 1)], np.nan)
