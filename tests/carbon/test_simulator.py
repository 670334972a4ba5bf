"""The simulator drives the production planner over the shipped traces: accounting identities,
deadlines, the oracle bound, budgets, and that a decision it makes is the planner's own."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.planner import JobSpec, Planner
from greentrainer_carbon.simulator import (
    LONG_JOB,
    SHORT_JOB,
    SimClock,
    SimConfig,
    TraceSimulation,
    summarise,
)
from greentrainer_carbon.trace_data import load_trace

ENERGY = EnergyModel(host_w=200.0, compute_w=800.0, overhead_s=0.0, resume_s=0.0)


@pytest.fixture(scope="module")
def gb():
    return load_trace("gb-2020")


@pytest.fixture(scope="module")
def short_runs(gb):
    sim = TraceSimulation(gb, SimConfig(n_jobs=24, seed=7, energy=ENERGY))
    return {mode: sim.run(SHORT_JOB, mode) for mode in ("history", "oracle")}


def test_full_fine_tuning_emissions_are_the_trace_integral(gb, short_runs):
    sim = TraceSimulation(gb, SimConfig(n_jobs=24, seed=7, energy=ENERGY))
    full = [o for o in short_runs["history"] if o.policy == "full"]
    assert len(full) == 24
    for outcome in full[:5]:
        assert outcome.rhos == [1.0, 1.0, 1.0] and outcome.pauses == 0
        start = int((outcome.arrival - gb.start).total_seconds() // 1800)
        expected = 1.0 * float(np.sum(gb.values_g_per_kwh[start:start + 6])) / 2 / 1000
        assert outcome.kg_co2 == pytest.approx(expected, rel=1e-9)
        assert sim.mean_intensity(outcome.arrival, outcome.finish) * 3.0 / 1000 == \
            pytest.approx(expected, rel=1e-9)


def test_fixed_rho_started_at_once_cuts_exactly_its_share(short_runs):
    table = summarise(short_runs["history"])
    # No overhead or loading in ENERGY: energy and time scale with rho, the interval shrinks.
    assert table["fixed"]["mean_rho"] == pytest.approx(0.6)
    assert table["full"]["kg_co2"] > table["fixed"]["kg_co2"]


def test_no_policy_misses_a_deadline_and_carbon_aware_keeps_its_mean_rho(short_runs):
    for mode, outcomes in short_runs.items():
        table = summarise(outcomes)
        assert all(row["misses"] == 0 for row in table.values()), mode
        assert table["both"]["mean_rho"] == pytest.approx(0.6, abs=1e-9), mode
        assert table["carbon_aware"]["mean_rho"] == pytest.approx(0.6, abs=1e-9), mode


def test_waiting_for_cleaner_hours_pays_off_and_the_oracle_is_the_upper_bound(short_runs):
    history, oracle = summarise(short_runs["history"]), summarise(short_runs["oracle"])
    assert history["window"]["kg_co2"] < history["fixed"]["kg_co2"]
    assert oracle["both"]["kg_co2"] <= history["both"]["kg_co2"] * 1.0001
    assert history["both"]["pauses"] >= 0 and oracle["window"]["pauses"] >= 0


def test_a_simulated_decision_is_the_planners_own(gb):
    """The simulator adds nothing to a decision: the planner asked directly at the same moment
    with the same forecaster answers the same start and rho."""
    config = SimConfig(n_jobs=4, seed=3, energy=ENERGY)
    sim = TraceSimulation(gb, config)
    outcome = next(o for o in sim.run(SHORT_JOB, "history", ("both",)))
    clock = SimClock(outcome.arrival)
    forecaster = sim.forecaster(SHORT_JOB, "history", clock)
    spec = JobSpec(3, config.policy("both", outcome.deadline), 3600.0, ENERGY)
    planner = Planner(spec, forecaster)
    now = outcome.arrival
    while not (decision := planner.decide(now, [])).run_now:
        now = now + timedelta(minutes=30)
        clock.now = now
    assert now == outcome.starts[0] and decision.rho == pytest.approx(outcome.rhos[0])


def test_budget_jobs_stay_within_their_budget_as_recorded(gb):
    sim = TraceSimulation(gb, SimConfig(n_jobs=20, seed=5, energy=ENERGY))
    outcomes = sim.run(LONG_JOB, "history", ("full", "budget"))
    table = summarise(outcomes)
    assert table["budget"]["over_budget"] == 0
    assert table["budget"]["refused"] + table["budget"]["stopped"] < table["budget"]["jobs"]


def test_bad_simulation_settings_are_refused():
    with pytest.raises(ValueError, match="rho_target"):
        SimConfig(rho_target=0.95)
    with pytest.raises(ValueError, match="rho_fixed"):
        SimConfig(rho_fixed=0.0)
