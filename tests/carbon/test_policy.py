"""rho policy: monotone, bounded, mean-preserving, CO2-budget feasibility."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greentrainer_carbon.errors import BudgetExhaustedError, BudgetInfeasibleError, PolicyError
from greentrainer_carbon.policy import (
    RhoBounds,
    budget_rho,
    check_budget_feasible,
    mean_preserving_rho,
    quantile_rank,
    quantile_rho,
)

intensities = st.floats(min_value=0, max_value=1000, allow_nan=False)
references = st.lists(intensities, min_size=1, max_size=60).map(np.array)
bounds_st = st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0)).map(
    lambda p: RhoBounds(min(p), max(p))
)


def test_quantile_rank_is_the_mid_rank_cdf():
    reference = np.array([100.0, 200.0, 300.0, 400.0])
    assert quantile_rank(reference, 50) == 0.0 and quantile_rank(reference, 500) == 1.0
    assert quantile_rank(reference, 200) == pytest.approx(0.375)
    assert quantile_rank(np.array([1.0, np.nan, 3.0]), 2.0) == 0.5
    with pytest.raises(PolicyError, match="empty"):
        quantile_rank(np.array([np.nan]), 1.0)


@settings(max_examples=200, deadline=None)
@given(references, intensities, intensities, bounds_st)
def test_quantile_policy_is_monotone_and_bounded(reference, c1, c2, bounds):
    cleaner, dirtier = min(c1, c2), max(c1, c2)
    rho_clean = quantile_rho(quantile_rank(reference, cleaner), bounds)
    rho_dirty = quantile_rho(quantile_rank(reference, dirtier), bounds)
    assert rho_dirty <= rho_clean + 1e-12
    assert bounds.rho_min - 1e-12 <= rho_dirty and rho_clean <= bounds.rho_max + 1e-12


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 1),
    st.floats(0, 1),
    st.lists(st.floats(0, 1), max_size=8),
    bounds_st,
    st.floats(0, 1),
)
def test_mean_preserving_rho_is_monotone_in_the_live_quantile_and_bounded(
    q1, q2, upcoming, bounds, where
):
    target = bounds.rho_min + where * bounds.spread
    q_clean, q_dirty = min(q1, q2), max(q1, q2)
    rho_clean = mean_preserving_rho(q_clean, np.array(upcoming), target, bounds)
    rho_dirty = mean_preserving_rho(q_dirty, np.array(upcoming), target, bounds)
    assert rho_dirty <= rho_clean + 1e-12
    assert bounds.rho_min - 1e-12 <= rho_dirty <= rho_clean <= bounds.rho_max + 1e-12


def test_mean_preserving_rho_keeps_the_target_reachable():
    bounds = RhoBounds(0.4, 0.8)
    # Two epochs left with a remaining mean of 0.75: this one may not go below 0.7.
    assert mean_preserving_rho(1.0, np.array([0.0]), 0.75, bounds) == pytest.approx(0.7)
    # Last epoch: exactly the remaining mean, whatever the intensity.
    assert mean_preserving_rho(0.0, np.array([]), 0.55, bounds) == pytest.approx(0.55)


def test_bounds_are_validated_with_the_field_name():
    with pytest.raises(PolicyError, match="rho_min"):
        RhoBounds(0.0, 0.5)
    with pytest.raises(PolicyError, match="rho_max"):
        RhoBounds(0.6, 0.5)


def test_budget_check_refuses_at_submission_when_rho_min_cannot_fit():
    bounds = RhoBounds(0.4, 1.0)
    # 5 epochs x 0.4 x 2 kWh x 300 g/kWh = 1.2 kg needed at rho_min.
    check_budget_feasible(1.2, 5, 2.0, 300.0, bounds)
    with pytest.raises(BudgetInfeasibleError, match="co2_budget_kg=1.1 cannot be met.*1.2 kg"):
        check_budget_feasible(1.1, 5, 2.0, 300.0, bounds)


def test_budget_rho_spends_more_when_clean_and_never_plans_past_the_reserve():
    bounds = RhoBounds(0.3, 1.0)
    c = np.array([100.0, 200.0, 300.0])
    q = np.array([0.1, 0.5, 0.9])
    generous = budget_rho(c, q, 1.0, 100.0, 400.0, bounds)
    assert generous == 1.0
    tight = budget_rho(c, q, 1.0, 0.5, 400.0, bounds)
    reserve = 2 * 0.3 * 1.0 * 400 / 1000
    assert bounds.rho_min <= tight and tight * 1.0 * 400 / 1000 <= 0.5 - reserve + 1e-12
    dirtier_now = budget_rho(np.array([300.0, 200.0, 100.0]), q[::-1], 1.0, 0.5, 400.0, bounds)
    assert dirtier_now <= tight
    with pytest.raises(BudgetExhaustedError, match="stop the job"):
        budget_rho(c, q, 1.0, 0.3, 400.0, bounds)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=12),
    st.floats(1.0, 3.0),
    st.floats(0.1, 0.9),
    st.integers(0, 2**31),
)
def test_budget_mode_never_overspends_while_the_grid_stays_under_the_pessimistic_value(
    actual_fractions, slack, rho_min, seed
):
    bounds = RhoBounds(rho_min, 1.0)
    pessimistic, energy = 400.0, 2.0
    n = len(actual_fractions)
    budget = slack * n * rho_min * energy * pessimistic / 1000  # feasible at submission
    check_budget_feasible(budget, n, energy, pessimistic, bounds)
    rng = np.random.default_rng(seed)
    spent = 0.0
    for k, fraction in enumerate(actual_fractions):
        forecast = rng.uniform(0, pessimistic, n - k)  # any forecast, right or wrong
        q = np.atleast_1d(quantile_rank(forecast, forecast))
        rho = budget_rho(forecast, q, energy, budget - spent, pessimistic, bounds)
        assert bounds.rho_min <= rho <= bounds.rho_max
        spent += rho * energy * fraction * pessimistic / 1000  # what the grid really charged
    assert spent <= budget + 1e-9
