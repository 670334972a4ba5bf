"""The decision engine on hand-made forecasts: waits for the cleanest hours, keeps the deadline,
pauses only when it pays, holds the mean rho, refuses budgets nothing can meet; the forecaster
says where each hour of its forecast comes from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.errors import BudgetInfeasibleError, PolicyError
from greentrainer_carbon.forecaster import Forecaster, SourceAnswer
from greentrainer_carbon.history import MemoryHistory, slot_of, slot_start
from greentrainer_carbon.planner import EpochDone, JobSpec, Planner
from greentrainer_carbon.readings import CarbonReading
from greentrainer_carbon.rho_policy import RHO_FLOOR

NOW = datetime(2030, 6, 1, 10, 0, tzinfo=UTC)
ENERGY = EnergyModel(host_w=100.0, compute_w=900.0, overhead_s=0.0, resume_s=0.0)


class Scripted:
    """An intensity source with a fixed forecast from NOW's slot on (shifted as time passes)."""

    def __init__(self, values: list[float], static: float | None = 250.0,
                 provider_slots: int | None = None) -> None:
        self.values = np.asarray(values, dtype=float)
        self.static = static
        self.provider_slots = provider_slots

    def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
        start = first_slot - slot_of(NOW)
        part = self.values[start:start + n_slots]
        grid = np.concatenate((part, np.full(n_slots - part.size, np.nan)))
        if self.provider_slots is not None:
            grid[self.provider_slots:] = np.nan
        live = CarbonReading(float(self.values[start]), slot_start(first_slot), "scripted")
        return SourceAnswer(live, grid, self.static)


def planner(values: list[float], policy: dict, n_epochs: int = 2, full_s: float = 1800.0,
            history: MemoryHistory | None = None, energy: EnergyModel = ENERGY) -> Planner:
    forecaster = Forecaster(Scripted(values), history or MemoryHistory(), "XX")
    return Planner(JobSpec(n_epochs, policy, full_s, energy), forecaster)


def test_a_job_without_deadline_runs_now_at_its_fixed_rho() -> None:
    decision = planner([300.0] * 10, {"type": "fixed", "rho": 0.6}).decide(NOW, [])
    assert decision.run_now and decision.rho == 0.6 and decision.start_at == NOW
    assert decision.reading.carbon_intensity_g_per_kwh == 300.0


def test_a_deadline_job_waits_for_the_cleanest_hours_and_says_why() -> None:
    values = [400.0, 400.0, 400.0, 100.0, 100.0, 400.0, 400.0, 400.0, 400.0, 400.0]
    policy = {"type": "fixed", "rho": 1.0, "deadline": NOW + timedelta(hours=5)}
    decision = planner(values, policy).decide(NOW, [])
    assert not decision.run_now and decision.rho is None
    assert decision.start_at == NOW + timedelta(hours=1, minutes=30)
    assert "cleaner hours" in decision.reason
    assert decision.expected_g_per_kwh == pytest.approx(100.0)
    # Two epochs of 30 min at 1 kWh each, both in the 100 g/kWh hour.
    assert decision.planned_kg_co2 == pytest.approx(2 * 0.5 * 100 / 1000)


def test_the_deadline_is_a_hard_promise() -> None:
    values = [400.0] * 6 + [10.0] * 4
    policy = {"type": "fixed", "rho": 1.0, "deadline": NOW + timedelta(minutes=50)}
    decision = planner(values, policy).decide(NOW, [])
    assert decision.run_now and "no room to wait" in decision.reason
    past = {"type": "fixed", "rho": 1.0, "deadline": NOW - timedelta(hours=1)}
    assert planner(values, past).decide(NOW, []).run_now


def test_a_pause_happens_only_when_the_forecast_repays_the_resume() -> None:
    values = [300.0, 300.0, 299.0, 299.0, 299.0, 299.0, 299.0, 299.0, 299.0, 299.0]
    policy = {"type": "fixed", "rho": 1.0, "deadline": NOW + timedelta(hours=4)}
    done = [EpochDone(0, 1.0, NOW - timedelta(minutes=30), 1800.0, 0.15)]
    costly = EnergyModel(host_w=100.0, compute_w=900.0, resume_s=600.0)
    decision = planner(values, policy, energy=costly).decide(NOW, done)
    assert decision.run_now and "resuming costs" in decision.reason
    cheap = planner([300.0, 300.0] + [50.0] * 8, policy).decide(NOW, done)
    assert not cheap.run_now


def test_carbon_aware_rho_is_high_when_clean_and_keeps_the_mean() -> None:
    policy = {"type": "carbon-aware", "rho_min": 0.4, "rho_max": 0.8, "rho_target": 0.6,
              "allow_low_rho": True}
    clean = planner([100.0] + [300.0] * 20, policy, n_epochs=3).decide(NOW, [])
    dirty = planner([500.0] + [300.0] * 20, policy, n_epochs=3).decide(NOW, [])
    assert clean.rho is not None and dirty.rho is not None and clean.rho > 0.6 > dirty.rho
    last = planner([300.0] * 20, policy, n_epochs=3).decide(
        NOW, [EpochDone(0, 0.8, NOW, 1440.0), EpochDone(1, 0.8, NOW, 1440.0)])
    assert last.rho == pytest.approx(0.4)  # 0.8 + 0.8 + 0.4 = 3 x 0.6


def test_the_default_mapping_keeps_the_middle_of_the_range_and_quantile_is_chosen_by_name() -> None:
    ranged = {"type": "carbon-aware", "rho_min": 0.4, "rho_max": 0.8, "allow_low_rho": True}
    last = planner([300.0] * 20, ranged, n_epochs=3).decide(
        NOW, [EpochDone(0, 0.8, NOW, 1440.0), EpochDone(1, 0.8, NOW, 1440.0)])
    assert last.rho == pytest.approx(0.4)  # no rho_target: the mean kept is 0.6
    quantile = planner([300.0] * 20, {**ranged, "mapping": "quantile"}, n_epochs=3).decide(
        NOW, [EpochDone(0, 0.8, NOW, 1440.0), EpochDone(1, 0.8, NOW, 1440.0)])
    assert quantile.rho is not None and quantile.rho > 0.4  # the rank alone, the mean not kept


def test_a_budget_that_the_cheapest_schedule_cannot_meet_is_refused_with_its_minimum() -> None:
    policy = {"type": "carbon-aware", "rho_min": 0.5, "rho_max": 1.0, "co2_budget_kg": 0.01,
              "deadline": NOW + timedelta(hours=3)}
    p = planner([200.0, 200.0, 50.0, 50.0, 200.0, 200.0, 200.0, 200.0], policy)
    with pytest.raises(BudgetInfeasibleError) as caught:
        p.check_budget(NOW)
    # Two epochs at rho 0.5: 15 min and 0.25 kWh each, both in the 50 g/kWh hour: 0.025 kg.
    assert caught.value.minimum_kg_co2 == pytest.approx(0.025)
    assert "0.025 kg" in str(caught.value) and "rho 0.5" in str(caught.value)
    enough = planner([200.0, 200.0, 50.0, 50.0] + [200.0] * 4,
                     {**policy, "co2_budget_kg": 0.03}).check_budget(NOW)
    assert enough.minimum_kg_co2 == pytest.approx(0.025) and enough.rho == 0.5
    assert enough.planned_starts[0] == NOW + timedelta(hours=1)


def test_the_plan_follows_the_measured_epoch_time() -> None:
    p = planner([300.0] * 20, {"type": "fixed", "rho": 0.5}, full_s=3600.0)
    assert p.full_epoch_s([]) == 3600.0
    assert p.full_epoch_s([EpochDone(0, 0.5, NOW, 900.0)]) == pytest.approx(1800.0)


def test_a_finished_job_has_nothing_to_decide() -> None:
    done = [EpochDone(i, 0.6, NOW, 60.0) for i in range(2)]
    with pytest.raises(PolicyError, match="all 2 epochs"):
        planner([300.0] * 5, {"type": "fixed", "rho": 0.6}).decide(NOW, done)


def test_the_forecast_names_its_sources_and_fills_beyond_the_provider_from_history() -> None:
    history = MemoryHistory()
    past_day = [CarbonReading(100.0 + 100.0 * ((s // 12) % 2), NOW - timedelta(minutes=30 * s),
                              "gb") for s in range(1, 7 * 48)]
    history.record("XX", past_day)
    source = Scripted([300.0] * 200, provider_slots=4)
    forecast = Forecaster(source, history, "XX").forecast(NOW, 48)
    hours = forecast.source_hours()
    assert hours == {"live": 0.5, "provider": 1.5, "history": 22.0}
    assert forecast.notes == ()
    # Beyond the provider: the recorded daily pattern (6-hour swings of 100 g/kWh), not flat.
    assert np.ptp(forecast.g_per_kwh[8:]) > 50.0


def test_a_new_deployment_says_it_has_no_history_and_uses_the_static_average() -> None:
    forecast = Forecaster(Scripted([300.0] * 10, static=240.0, provider_slots=1),
                          MemoryHistory(), "XX").forecast(NOW, 8)
    assert forecast.source_hours() == {"live": 0.5, "static": 3.5}
    assert np.all(forecast.g_per_kwh[1:] == 240.0)
    assert "no intensity history is recorded for XX yet" in forecast.notes[0]


def test_a_high_carbon_aware_rho_is_capped_so_the_epochs_still_end_by_the_deadline() -> None:
    policy = {"type": "carbon-aware", "rho_min": 0.4, "rho_max": 0.8, "allow_low_rho": True,
              "deadline": NOW + timedelta(hours=1)}
    energy = EnergyModel(resume_s=120.0)
    # The cleanest hour in the forecast: the map wants rho_max; two 1-h epochs at 0.8 would end
    # 36 min late, so each gets (3600 s - one 120 s resume) / 2 of time: rho 1740 / 3600.
    decision = planner([100.0] + [300.0] * 20, policy, n_epochs=2, full_s=3600.0,
                       energy=energy).decide(NOW, [])
    assert decision.run_now and decision.rho == pytest.approx(1740.0 / 3600.0)
    assert "capped" in decision.reason
    roomy = planner([100.0] + [300.0] * 20, {**policy, "deadline": NOW + timedelta(hours=4)},
                    n_epochs=2, full_s=3600.0, energy=energy).decide(NOW, [])
    assert roomy.rho is not None and roomy.rho > 0.6 and "capped" not in roomy.reason


def test_no_decision_goes_below_the_quality_floor_unless_the_policy_allows_it() -> None:
    done = [EpochDone(0, 0.8, NOW, 1440.0), EpochDone(1, 0.8, NOW, 1440.0)]
    stored = {"type": "carbon-aware", "rho_min": 0.3, "rho_max": 0.8, "rho_target": 0.6}
    # The mean wants 0.2 for the last epoch; a policy stored before the floor existed gets it.
    assert planner([300.0] * 20, stored, n_epochs=3).decide(NOW, done).rho == RHO_FLOOR
    allowed = planner([300.0] * 20, {**stored, "allow_low_rho": True}, n_epochs=3)
    assert allowed.decide(NOW, done).rho == pytest.approx(0.3)
