"""Green windows: rolling-mean start choice, deadlines, pausable epoch placement."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greentrainer_carbon.errors import WindowError
from greentrainer_carbon.readings import CarbonReading
from greentrainer_carbon.windows import (
    best_start_slot,
    choose_start,
    estimate_duration_s,
    plan_epoch_starts,
    window_integrals,
)

NOW = datetime(2024, 1, 1, tzinfo=UTC)
forecasts = st.lists(st.floats(10, 500), min_size=2, max_size=40).map(np.array)


def brute_integral(f: np.ndarray, start: float, duration: float) -> float:
    """Sum of each slot's value times its overlap with [start, start + duration)."""
    end = start + duration
    return sum(float(v) * max(0.0, min(i + 1, end) - max(i, start)) for i, v in enumerate(f))


@settings(max_examples=50, deadline=None)
@given(forecasts, st.floats(0.1, 5.0))
def test_window_integrals_match_a_brute_force_integral(f, duration):
    n_starts = max(1, int(f.size - duration) + 1)
    got = window_integrals(f, duration, n_starts)
    for s in range(n_starts):
        if s + duration <= f.size:
            assert got[s] == pytest.approx(brute_integral(f, s, duration), rel=1e-9, abs=1e-9)


def test_best_start_minimises_the_window_mean_not_the_single_cleanest_slot():
    # The cleanest single slot (index 1) sits between two dirty ones;
    # the cleanest 3-slot window starts at 4.
    forecast = np.array([300, 50, 400, 300, 120, 110, 130, 300, 300.0])
    assert best_start_slot(forecast, 3, latest_start_slot=6) == 4
    assert (
        best_start_slot(forecast, 3, latest_start_slot=2) == 0
    )  # deadline excludes the clean window


def test_a_missing_forecast_never_wins_and_no_forecast_means_start_now():
    assert best_start_slot(np.array([200, np.nan, 10, 10, 150, 160.0]), 2, 4) == 2
    assert best_start_slot(np.array([np.nan, np.nan]), 1, 1) == 0
    with pytest.raises(WindowError, match="deadline"):
        best_start_slot(np.array([1.0]), 1, -1)


@settings(max_examples=60, deadline=None)
@given(forecasts, st.integers(1, 3), st.integers(1, 4), st.floats(0.5, 3.0))
def test_epoch_placement_is_ordered_meets_the_deadline_and_is_optimal(
    f, n_epochs, spare, epoch_slots
):
    step = int(np.ceil(epoch_slots))
    last_end = min(f.size, step * n_epochs + spare)
    try:
        starts = plan_epoch_starts(f, epoch_slots, n_epochs, last_end)
    except WindowError:
        assert (n_epochs - 1) * step + epoch_slots > last_end
        return
    assert len(starts) == n_epochs and starts[-1] + epoch_slots <= last_end + 1e-9
    assert all(b - a >= step for a, b in itertools.pairwise(starts))
    costs = window_integrals(f, epoch_slots, int(np.floor(last_end - epoch_slots)) + 1)
    best = min(
        sum(costs[list(c)])
        for c in itertools.combinations(range(costs.size), n_epochs)
        if all(b - a >= step for a, b in itertools.pairwise(c))
    )
    assert sum(costs[starts]) == pytest.approx(best)


def test_choose_start_works_on_readings_and_datetimes():
    values = [300, 290, 280, 100, 90, 95, 300, 310]
    readings = [
        CarbonReading(v, NOW + timedelta(minutes=30 * i), "fake", is_forecast=True)
        for i, v in enumerate(values)
    ]
    choice = choose_start(readings, NOW, timedelta(hours=1.5), NOW + timedelta(hours=4))
    assert choice.start == NOW + timedelta(hours=1.5) and not choice.start_now
    assert choice.expected_mean_g_per_kwh == pytest.approx(95.0)
    tight = choose_start(readings, NOW, timedelta(hours=1.5), NOW + timedelta(hours=1.5))
    assert tight.start_now
    with pytest.raises(WindowError, match="only"):
        choose_start(readings, NOW, timedelta(hours=2), NOW + timedelta(hours=1))


def test_replanning_with_a_changed_forecast_moves_the_start():
    flat = [
        CarbonReading(200, NOW + timedelta(minutes=30 * i), "f", is_forecast=True)
        for i in range(10)
    ]
    first = choose_start(flat, NOW, timedelta(hours=1), NOW + timedelta(hours=5))
    assert first.start_now  # nothing to gain: start at once (earliest on ties)
    changed = [
        CarbonReading(50 if i in (6, 7) else 200, r.timestamp, "f", is_forecast=True)
        for i, r in enumerate(flat)
    ]
    second = choose_start(changed, NOW, timedelta(hours=1), NOW + timedelta(hours=5))
    assert second.start == NOW + timedelta(hours=3)


def test_duration_estimate_from_flops_and_throughput():
    assert estimate_duration_s(3.6e15, 1e12, rho=0.5) == pytest.approx(1800.0)
    with pytest.raises(ValueError, match="throughput_flops_per_s"):
        estimate_duration_s(1e12, 0)
