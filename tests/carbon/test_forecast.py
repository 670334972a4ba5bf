"""Forecasts: the daily-profile model never reads the future; the oracle is the future."""

from __future__ import annotations

import numpy as np

from greentrainer_carbon.forecast import (
    daily_profile_forecast,
    forecast_from_history,
    oracle_forecast,
)
from greentrainer_carbon.trace_data import load_trace


def test_daily_profile_forecast_ignores_every_value_after_the_decision_slot():
    rng = np.random.default_rng(0)
    values = rng.uniform(50, 300, 48 * 12)
    t = np.array([48 * 8 + 5, 48 * 9 + 40])
    base = daily_profile_forecast(values, t, 100)
    for row, slot in enumerate(t):
        perturbed = values.copy()
        perturbed[slot + 1 :] = rng.uniform(1000, 2000, perturbed.size - slot - 1)
        assert np.array_equal(
            daily_profile_forecast(perturbed, np.array([slot]), 100)[0], base[row]
        )


def test_production_forecast_is_the_same_function_as_the_simulators():
    values = load_trace("gb-2020").values_g_per_kwh[:2000]
    assert np.allclose(
        forecast_from_history(values[:1500], 60),
        daily_profile_forecast(values, np.array([1499]), 60)[0],
    )


def test_forecast_starts_at_the_live_value_and_follows_the_daily_shape():
    days = np.tile(np.concatenate([np.full(24, 100.0), np.full(24, 300.0)]), 8)
    forecast = daily_profile_forecast(days, np.array([days.size - 1]), 48)[0]
    assert forecast[0] == 300.0
    assert np.allclose(forecast[1:25], 100.0) and np.allclose(forecast[25:], 300.0)


def test_oracle_is_the_recorded_future_and_nan_past_the_end():
    values = np.arange(10.0)
    oracle = oracle_forecast(values, np.array([7]), 5)[0]
    assert list(oracle[:3]) == [7.0, 8.0, 9.0] and np.isnan(oracle[3:]).all()


def test_daily_profile_beats_persistence_on_the_gb_2020_trace():
    values = load_trace("gb-2020").values_g_per_kwh
    t = np.arange(400, values.size - 100, 11)
    truth = oracle_forecast(values, t, 49)[:, 1:]
    profile = daily_profile_forecast(values, t, 49)[:, 1:]
    persistence = values[t][:, None]
    assert np.mean(np.abs(profile - truth)) < 0.85 * np.mean(np.abs(persistence - truth))
