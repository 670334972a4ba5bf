"""The energy model fitted from measured epochs recovers the powers the epochs were drawn with,
and falls back to the assumed model (saying so) when the records cannot tell."""

from __future__ import annotations

import numpy as np
import pytest

from greentrainer_carbon.energy import J_PER_KWH, EnergyModel
from greentrainer_carbon.energy_fit import MeasuredEpoch, fit_energy_model
from greentrainer_carbon.planner import Decision

ASSUMED = EnergyModel(resume_s=60.0)


def _epochs(host_w: float, compute_w: float, overhead_s: float, noise: float = 0.0,
            seed: int = 0) -> list[MeasuredEpoch]:
    """Epochs of three jobs (full-cost times 100, 250, 40 s) at several rhos, their energy drawn
    from the model, with relative noise ``noise``."""
    rng = np.random.default_rng(seed)
    out = []
    for job, full_s in (("a", 100.0), ("b", 250.0), ("c", 40.0)):
        for rho in (0.5, 0.6, 0.8, 1.0):
            seconds = overhead_s + rho * full_s
            joules = host_w * seconds + compute_w * rho * full_s
            out.append(MeasuredEpoch(job, rho, seconds * (1 + noise * rng.standard_normal()),
                                     joules / J_PER_KWH * (1 + noise * rng.standard_normal())))
    return out


def test_the_fit_recovers_host_and_compute_power_and_the_overhead() -> None:
    fitted = fit_energy_model(_epochs(120.0, 480.0, 7.0), ASSUMED, "on h200")
    assert fitted.host_w == pytest.approx(120.0, rel=1e-6)
    assert fitted.compute_w == pytest.approx(480.0, rel=1e-6)
    assert fitted.overhead_s == pytest.approx(7.0, rel=1e-6)
    assert fitted.resume_s == ASSUMED.resume_s  # never fitted
    assert fitted.source == "fitted from 12 epochs on h200"


def test_the_fit_is_close_under_measurement_noise() -> None:
    fitted = fit_energy_model(_epochs(120.0, 480.0, 7.0, noise=0.01), ASSUMED)
    assert fitted.host_w + fitted.compute_w == pytest.approx(600.0, rel=0.03)
    assert fitted.overhead_s == pytest.approx(7.0, abs=1.5)


def test_without_overhead_only_the_total_power_is_fitted_and_the_split_is_assumed() -> None:
    fitted = fit_energy_model(_epochs(100.0, 300.0, 0.0), ASSUMED)
    assert fitted.host_w + fitted.compute_w == pytest.approx(400.0, rel=1e-6)
    assert fitted.host_w / fitted.compute_w == pytest.approx(ASSUMED.host_w / ASSUMED.compute_w)
    assert fitted.overhead_s == pytest.approx(0.0, abs=1e-6)
    assert "split assumed" in fitted.source
    # what the planner computes only depends on the total then
    assert fitted.epoch_kwh(100.0, 0.6) == pytest.approx(400.0 * 60.0 / J_PER_KWH)


def test_too_few_epochs_or_one_rho_keep_the_assumed_model() -> None:
    epochs = _epochs(120.0, 480.0, 7.0)
    assert fit_energy_model(epochs[:2], ASSUMED) is ASSUMED
    same_rho = [e for e in epochs if e.rho == 0.6]
    assert len(same_rho) == 3 and fit_energy_model(same_rho, ASSUMED) is ASSUMED
    unmeasured = [MeasuredEpoch(e.job, e.rho, e.seconds, 0.0) for e in epochs]
    assert fit_energy_model(unmeasured, ASSUMED) is ASSUMED
    assert ASSUMED.source == "assumed"


def test_a_decision_records_the_energy_model_it_planned_with() -> None:
    from datetime import UTC, datetime

    from greentrainer_carbon.readings import CarbonReading

    fitted = fit_energy_model(_epochs(120.0, 480.0, 7.0), ASSUMED)
    now = datetime(2020, 3, 1, tzinfo=UTC)
    data = Decision(True, now, 0.6, CarbonReading(100.0, now, "x"), 100.0, 1.0, "why",
                    energy=fitted).to_dict()
    assert data["energy_model"]["source"] == "fitted from 12 epochs"
    assert data["energy_model"]["host_w"] == pytest.approx(120.0)
