"""CodeCarbon per epoch: the CO2 is the measured kWh at the scheduler's intensity, and a
measurement failure never reaches the job."""

from __future__ import annotations

import logging

import pytest

import worker.energy as energy
from worker.energy import EnergyMeter


def _busy() -> int:
    return sum(i * i for i in range(400_000))


def test_epoch_co2_is_energy_times_the_forced_intensity() -> None:
    meter = EnergyMeter(gpu_ids=None)
    meter.start(321.0)
    _busy()
    measured = meter.stop()
    assert measured is not None and measured.energy_kwh > 0
    assert measured.kg_co2 == pytest.approx(measured.energy_kwh * 321.0 / 1000, rel=1e-6)
    assert measured.energy_kwh == pytest.approx(
        measured.cpu_kwh + measured.gpu_kwh + measured.ram_kwh, rel=1e-6)


def test_two_epochs_are_measured_separately() -> None:
    meter = EnergyMeter(gpu_ids=None)
    meter.start(100.0)
    _busy()
    first = meter.stop()
    meter.start(500.0)
    _busy()
    second = meter.stop()
    assert first is not None and second is not None
    assert first.kg_co2 / first.energy_kwh == pytest.approx(0.1)
    assert second.kg_co2 / second.energy_kwh == pytest.approx(0.5)


def test_a_codecarbon_failure_is_logged_and_the_epoch_goes_unmeasured(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import codecarbon

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("no power data")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", broken)
    meter = EnergyMeter(gpu_ids=[0])
    with caplog.at_level(logging.WARNING, logger=energy.log.name):
        meter.start(200.0)
        assert meter.stop() is None
    assert "CodeCarbon could not start" in caplog.text


def test_stop_without_start_measures_nothing() -> None:
    assert EnergyMeter(gpu_ids=None).stop() is None
