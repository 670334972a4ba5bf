"""The simulator on the shipped GB trace: accounting identities, deadlines, budget, oracle bound."""

from __future__ import annotations

import numpy as np
import pytest

from greentrainer_carbon.simulator import LONG_JOB, SHORT_JOB, SimConfig, TraceSimulation
from greentrainer_carbon.trace_data import load_trace


@pytest.fixture(scope="module")
def gb():
    return load_trace("gb-2020")


@pytest.fixture(scope="module")
def short_results(gb):
    return TraceSimulation(gb, SimConfig(n_jobs=40, seed=7)).simulate(SHORT_JOB)


def test_full_fine_tuning_emissions_are_the_trace_integral(gb, short_results):
    sim = TraceSimulation(gb, SimConfig(n_jobs=40, seed=7))
    arrivals = sim.arrivals(SHORT_JOB)
    values = gb.values_g_per_kwh
    expected = [values[a : a + 6].sum() * 0.5 / 1000 for a in arrivals]  # 3 h at 1 kW, 30-min slots
    got = [o.kg_co2 for o in short_results.outcomes[("a", "now")]]
    assert np.allclose(got, expected)


def test_fixed_rho_cuts_exactly_its_flops_share_when_started_at_once(short_results):
    a = np.array([o.kg_co2 for o in short_results.outcomes[("a", "now")]])
    b = np.array([o.kg_co2 for o in short_results.outcomes[("b", "now")]])
    assert np.allclose(b, 0.6 * a)


def test_no_policy_misses_a_deadline_and_carbon_aware_rho_keeps_the_mean(short_results):
    for key, outcomes in short_results.outcomes.items():
        assert not any(o.missed for o in outcomes), key
    for policy in ("c", "d-start", "d-pause"):
        for mode in ("forecast", "oracle"):
            means = [np.mean(o.rhos) for o in short_results.outcomes[(policy, mode)]]
            assert np.allclose(means, 0.6), (policy, mode)


def test_waiting_with_a_perfect_forecast_is_never_worse_than_starting_at_once(short_results):
    at_once = np.array([o.kg_co2 for o in short_results.outcomes[("a", "now")]])
    waited = np.array([o.kg_co2 for o in short_results.outcomes[("w", "oracle")]])
    assert np.all(waited <= at_once + 1e-12) and waited.mean() < 0.9 * at_once.mean()


def test_budget_mode_never_exceeds_the_budget_in_simulation(gb):
    for time_model in ("fixed-slot", "compressed"):
        results = TraceSimulation(
            gb, SimConfig(n_jobs=60, seed=11, budget_fraction=0.75, time_model=time_model)
        ).simulate(LONG_JOB)
        ran = results.outcomes[("budget", "forecast")]
        assert len(ran) >= 20  # most budgets are feasible, so the check below is not vacuous
        assert all(o.kg_co2 <= o.budget_kg + 1e-12 for o in ran)
        assert np.mean([o.kg_co2 / o.budget_kg for o in ran]) > 0.6  # the budget is actually used


def test_in_the_compressed_time_model_carbon_aware_rho_equals_fixed_rho_back_to_back(gb):
    results = TraceSimulation(gb, SimConfig(n_jobs=15, seed=3, time_model="compressed")).simulate(
        LONG_JOB
    )
    b = np.array([o.kg_co2 for o in results.outcomes[("b", "now")]])
    c = np.array([o.kg_co2 for o in results.outcomes[("c", "forecast")]])
    assert np.allclose(b, c)  # same mean rho -> same contiguous interval at the same power


def test_bad_simulation_settings_are_refused():
    with pytest.raises(ValueError, match="time_model"):
        SimConfig(time_model="warp")
