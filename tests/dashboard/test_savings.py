"""The CO2 saving formulas of `service.savings`, checked against hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from service.models import JobEpoch
from service.savings import EpochFigures, Savings, epoch_savings, reference_intensity


def epoch(**overrides: float | None) -> EpochFigures:
    values: dict[str, float | None] = dict(executed_flops=4e15, full_ft_flops=1e16,
                                           energy_kwh=2.0, carbon_intensity_g_per_kwh=100.0,
                                           kg_co2=0.2)
    values.update(overrides)
    return JobEpoch(**values)  # an epoch row: what the API and dashboard pass


def test_fewer_flops_saving_is_full_ft_energy_at_the_used_intensity_minus_emitted() -> None:
    # Full FT energy = 2 kWh x 1e16 / 4e15 = 5 kWh; at 100 g/kWh that is 0.5 kg; emitted 0.2 kg.
    saving = epoch_savings(epoch(), reference_g_per_kwh=None)
    assert saving.full_ft_energy_kwh == pytest.approx(5.0)
    assert saving.saved_by_fewer_flops_kg == pytest.approx(0.3)
    assert saving.saved_by_cleaner_time_kg == 0.0  # no reference: the used intensity is it


def test_cleaner_time_saving_compares_full_ft_at_submission_and_at_the_used_intensity() -> None:
    # 5 kWh at 300 g/kWh (submission) = 1.5 kg vs 0.5 kg at 100 g/kWh.
    saving = epoch_savings(epoch(), reference_g_per_kwh=300.0)
    assert saving.saved_by_cleaner_time_kg == pytest.approx(1.0)
    assert saving.saved_kg == pytest.approx(1.3)
    assert saving.counterfactual_ref_kg - saving.emitted_kg == pytest.approx(saving.saved_kg)


def test_running_at_a_dirtier_time_is_a_negative_saving() -> None:
    assert epoch_savings(epoch(), reference_g_per_kwh=50.0).saved_by_cleaner_time_kg == (
        pytest.approx(-0.25))


def test_missing_energy_gives_no_co2_figures_but_nothing_invented() -> None:
    saving = epoch_savings(epoch(energy_kwh=None, kg_co2=None), reference_g_per_kwh=300.0)
    assert saving == Savings()


def test_emitted_co2_falls_back_to_energy_times_intensity() -> None:
    saving = epoch_savings(epoch(kg_co2=None), reference_g_per_kwh=None)
    assert saving.emitted_kg == pytest.approx(0.2)


def test_reference_is_the_submission_value_else_the_first_epoch_with_an_intensity() -> None:
    epochs = [epoch(carbon_intensity_g_per_kwh=None), epoch(carbon_intensity_g_per_kwh=80.0)]
    assert reference_intensity(250.0, epochs) == 250.0
    assert reference_intensity(None, epochs) == 80.0
    assert reference_intensity(None, []) is None


def test_savings_add_up_field_by_field() -> None:
    a = epoch_savings(epoch(), 300.0)
    b = epoch_savings(epoch(energy_kwh=1.0, kg_co2=0.1), 300.0)
    total = a + b
    assert math.isclose(total.saved_kg, a.saved_kg + b.saved_kg)
    assert math.isclose(total.emitted_kg, 0.3)
