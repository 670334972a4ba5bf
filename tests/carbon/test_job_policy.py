"""The rho of each epoch: as given for fixed/schedule policies, from the live intensity for
carbon-aware ones, with the reading and any provider fallback kept for the epoch's record."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from greentrainer_carbon import CarbonReading, CarbonSettings, FallbackEvent, SchedulerError
from greentrainer_carbon.job_policy import JobRho
from greentrainer_carbon.readings import ProviderFailure
from greentrainer_carbon.schedule import Outlook


class ScriptedOutlook:
    """Live intensities in order, against a fixed reference distribution 100..500 g/kWh."""

    def __init__(self, live: list[float], event: FallbackEvent | None = None) -> None:
        self.live, self.event = list(live), event

    def observe(self, now: datetime, epochs_after_this: int, epoch_hours: float) -> Outlook:
        value = self.live.pop(0)
        reading = CarbonReading(value, now, "scripted")
        return Outlook(reading, np.linspace(100, 500, 50), np.full(epochs_after_this, 300.0),
                       550.0, self.event)


CARBON = {"type": "carbon-aware", "rho_min": 0.3, "rho_max": 1.0, "region": "GB"}


def test_a_schedule_policy_is_used_as_given_and_still_reports_the_intensity() -> None:
    rho = JobRho({"type": "schedule", "rhos": [0.4, 0.9]}, 2,
                 outlook=ScriptedOutlook([250.0, 260.0]))
    assert [rho(0), rho(1)] == [0.4, 0.9]
    reading = rho.decide(1).reading
    assert reading is not None and reading.carbon_intensity_g_per_kwh == 260.0


def test_a_dirtier_grid_never_gets_a_larger_carbon_aware_rho() -> None:
    rho = JobRho(CARBON, 3, outlook=ScriptedOutlook([120.0, 480.0, 300.0]))
    clean, dirty, middle = rho(0), rho(1), rho(2)
    assert 0.3 <= dirty < middle < clean <= 1.0


def test_an_epoch_is_decided_once_and_a_resumed_job_keeps_its_past_decisions() -> None:
    rho = JobRho(CARBON, 3, outlook=ScriptedOutlook([480.0, 120.0, 120.0]))
    rho.restore({0: 0.77})
    assert rho(0) == 0.77 and rho(0) == 0.77


def test_the_provider_fallback_of_an_epoch_is_kept_for_its_events() -> None:
    event = FallbackEvent(datetime.now(UTC), (ProviderFailure("gb", "timeout"),), "static")
    rho = JobRho(CARBON, 1, outlook=ScriptedOutlook([200.0], event))
    assert rho.decide(0).fallback is event
    assert "provider gb failed" in event.message


def test_an_unknown_policy_type_is_refused_by_name() -> None:
    with pytest.raises(SchedulerError, match="rho_policy.type 'magic'"):
        JobRho({"type": "magic"}, 1, outlook=ScriptedOutlook([1.0]))


def test_budget_mode_calibrates_on_the_first_epoch_then_refuses_what_does_not_fit() -> None:
    from greentrainer_carbon import BudgetExhaustedError

    policy = {**CARBON, "co2_budget_kg": 1.0}
    rho = JobRho(policy, 3, outlook=ScriptedOutlook([200.0, 200.0, 200.0]))
    first = rho(0)
    # Epoch 0 used 0.9 kg; a full-cost epoch takes 3 kWh: even rho_min (0.3 x 3 kWh x >=0.2 kg/kWh
    # x 2 epochs) cannot fit in the 0.1 kg left.
    rho.record_epoch(0, 0.9, 3.0)
    assert 0.3 <= first <= 1.0
    with pytest.raises(BudgetExhaustedError):
        rho(1)


def test_budget_mode_with_room_keeps_rho_within_bounds() -> None:
    policy = {**CARBON, "co2_budget_kg": 100.0}
    rho = JobRho(policy, 3, outlook=ScriptedOutlook([200.0, 200.0, 200.0]))
    rho(0)
    rho.record_epoch(0, 0.01, 0.05)
    assert 0.3 <= rho(1) <= 1.0 and 0.3 <= rho(2) <= 1.0


def test_the_jobs_region_picks_the_static_average_of_its_country() -> None:
    carbon = CarbonSettings(providers="static")
    france = JobRho({**CARBON, "region": "FR"}, 1, carbon=carbon)
    britain = JobRho({**CARBON, "region": "GB"}, 1, carbon=carbon)
    try:
        fr, gb = france.decide(0).reading, britain.decide(0).reading
    finally:
        france.close()
        britain.close()
    assert fr is not None and gb is not None
    assert fr.source.endswith("FRA") and gb.source.endswith("GBR")
    assert fr.carbon_intensity_g_per_kwh < gb.carbon_intensity_g_per_kwh
