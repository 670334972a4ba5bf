"""Per-epoch schedules as the worker uses them, with a live provider chain behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from greentrainer_carbon.errors import BudgetInfeasibleError, PolicyError
from greentrainer_carbon.outlook import ChainOutlook
from greentrainer_carbon.policy import RhoBounds
from greentrainer_carbon.providers import (
    GBCarbonIntensityProvider,
    ProviderChain,
    StaticCountryProvider,
)
from greentrainer_carbon.readings import CarbonReading
from greentrainer_carbon.retrying_http import RetryingHTTP
from greentrainer_carbon.schedule import (
    BudgetRhoSchedule,
    CarbonAwareRhoSchedule,
    ExplicitRhoSchedule,
    FixedRhoSchedule,
    Outlook,
)

from .conftest import Answer

NOW = datetime(2024, 4, 1, 12, 0, tzinfo=UTC)


class ScriptedOutlook:
    """Live values per call; a fixed reference and forecast (stands in for a provider)."""

    def __init__(self, live: list[float], reference: np.ndarray, upcoming: float = 200.0) -> None:
        self.live = list(live)
        self.reference = reference
        self.upcoming = upcoming

    def observe(self, now, epochs_after_this, epoch_hours):
        value = self.live.pop(0) if len(self.live) > 1 else self.live[0]
        reading = CarbonReading(value, now, "scripted")
        return Outlook(
            reading,
            self.reference,
            np.full(epochs_after_this, self.upcoming),
            float(self.reference.max()) * 1.1,
        )


def test_fixed_and_explicit_rho_bypass_the_policy_but_report_the_reading():
    outlook = ScriptedOutlook([390.0], np.linspace(100, 400, 50))
    assert FixedRhoSchedule(0.7, 3, outlook).rho_for_epoch(1, NOW)[0] == 0.7
    explicit = ExplicitRhoSchedule([1.0, 0.5, 0.8], outlook)
    rho, reading = explicit.rho_for_epoch(1, NOW)
    assert rho == 0.5 and reading.carbon_intensity_g_per_kwh == 390.0
    with pytest.raises(PolicyError, match=r"rho_schedule\[1\]"):
        ExplicitRhoSchedule([1.0, 0.0])
    with pytest.raises(PolicyError, match="epoch_index"):
        explicit.rho_for_epoch(3, NOW)


def test_carbon_aware_schedule_keeps_the_mean_rho_exactly_and_follows_the_grid():
    rng = np.random.default_rng(3)
    live = list(rng.uniform(100, 400, 12))
    schedule = CarbonAwareRhoSchedule(
        RhoBounds(0.4, 0.8),
        12,
        ScriptedOutlook(live, np.linspace(100, 400, 100)),
        epoch_hours=1.0,
        rho_target=0.6,
    )
    rhos = [schedule.rho_for_epoch(k, NOW + timedelta(hours=k))[0] for k in range(12)]
    assert np.mean(rhos) == pytest.approx(0.6, abs=1e-9)
    assert all(0.4 - 1e-12 <= r <= 0.8 + 1e-12 for r in rhos)
    assert np.corrcoef(live, rhos)[0, 1] < -0.5  # dirtier epochs get less rho


def test_a_re_asked_epoch_gets_its_first_answer_again():
    schedule = CarbonAwareRhoSchedule(
        RhoBounds(0.4, 1.0), 3, ScriptedOutlook([100.0, 400.0], np.linspace(100, 400, 20)), 1.0
    )
    first = schedule.rho_for_epoch(0, NOW)[0]
    assert schedule.rho_for_epoch(0, NOW)[0] == first


def test_budget_schedule_refuses_an_impossible_budget_at_submission():
    outlook = ScriptedOutlook([200.0], np.linspace(100, 400, 20))
    schedule = BudgetRhoSchedule(
        RhoBounds(0.5, 1.0), 4, outlook, 1.0, energy_full_kwh_per_epoch=2.0, budget_kg_co2=0.5
    )
    with pytest.raises(BudgetInfeasibleError):
        schedule.check_feasible(NOW)  # 4 x 0.5 x 2 kWh x 440 g = 1.76 kg > 0.5 kg


def test_live_schedule_uses_the_gb_forecast_and_records_the_fallback(fake_server, sleeps):
    slots = [
        {
            "from": (NOW + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%MZ"),
            "intensity": {"forecast": 100 + 10 * i, "actual": None},
        }
        for i in range(48)
    ]
    fake_server.add(
        "/intensity",
        Answer(
            body={
                "data": [
                    {"from": "2024-04-01T12:00Z", "intensity": {"forecast": 560, "actual": 560}}
                ]
            }
        ),
        Answer(503, {"error": {"message": "down"}}),
    )
    fake_server.add("/intensity/2024-04-01T12:00Z/fw24h", Answer(body={"data": slots}))
    http = RetryingHTTP("gb", fake_server.url, max_retries=0, sleep=sleeps.append)
    chain = ProviderChain(
        [GBCarbonIntensityProvider(http, clock=lambda: NOW), StaticCountryProvider("FRA")]
    )
    schedule = CarbonAwareRhoSchedule(RhoBounds(0.4, 1.0), 2, ChainOutlook(chain), epoch_hours=1.0)
    rho, reading = schedule.rho_for_epoch(0, NOW)
    assert reading.source == "gb-carbon-intensity" and rho < 0.45  # dirtiest value of its outlook
    assert schedule.last_event is None
    rho, reading = schedule.rho_for_epoch(1, NOW)
    assert (
        reading.source == "codecarbon-static:FRA" and rho > 0.9
    )  # cleaner than GB's recent values
    assert "provider gb-carbon-intensity failed" in schedule.last_event.message


def test_a_schedule_restored_in_a_new_process_keeps_the_mean_rho():
    rng = np.random.default_rng(5)
    live = list(rng.uniform(100, 400, 6))
    reference = np.linspace(100, 400, 100)
    bounds = RhoBounds(0.4, 0.8)
    first = CarbonAwareRhoSchedule(
        bounds, 6, ScriptedOutlook(live[:3] + [200.0], reference), 1.0, 0.6
    )
    done = {k: first.rho_for_epoch(k, NOW)[0] for k in range(3)}
    resumed = CarbonAwareRhoSchedule(bounds, 6, ScriptedOutlook(live[3:], reference), 1.0, 0.6)
    resumed.restore(done)
    rest = [resumed.rho_for_epoch(k, NOW)[0] for k in range(3, 6)]
    assert np.mean(list(done.values()) + rest) == pytest.approx(0.6, abs=1e-9)
    with pytest.raises(PolicyError, match="restored rho for epoch 1"):
        resumed.restore({1: 1.5})
