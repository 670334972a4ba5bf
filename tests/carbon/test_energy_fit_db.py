"""The energy model fitted from a GPU class's recorded epochs, in the database and in use: the
worker's planner plans with it once enough epochs are measured, each decision records which
model it used, and the job page's "What is estimated" notes say so."""

from __future__ import annotations

from sqlalchemy.orm import Session

from greentrainer_carbon.energy import J_PER_KWH, EnergyModel
from service.models import JobEpoch
from service.pool.intensity import fitted_energy_model
from service.stats import JobSeries, Totals, estimate_notes, job_series
from tests.worker.conftest import Bench, bench  # noqa: F401 (fixture)
from worker.runner import Job, run_job

HOST_W, COMPUTE_W, OVERHEAD_S = 90.0, 310.0, 4.0


def _record_epochs(bench: Bench, full_epoch_s: float, rhos: list[float]) -> None:
    """A finished job on the bench's class whose epochs drew the powers above."""
    job_id = bench.job(status="succeeded")
    with bench.factory.begin() as session:
        for index, rho in enumerate(rhos):
            seconds = OVERHEAD_S + rho * full_epoch_s
            kwh = (HOST_W * seconds + COMPUTE_W * rho * full_epoch_s) / J_PER_KWH
            session.add(JobEpoch(job_id=job_id, epoch_index=index, rho=rho,
                                 selected_tensor_count=1, selected_tensor_names=["w"],
                                 predicted_flops=rho, executed_flops=rho, full_ft_flops=1.0,
                                 wall_seconds=seconds, energy_kwh=kwh, kg_co2=kwh * 0.2))


def _fitted(session: Session, gpu_class: str) -> EnergyModel:
    return fitted_energy_model(session, gpu_class, EnergyModel(resume_s=30.0))


def test_the_recorded_epochs_of_a_class_fit_its_powers_and_other_classes_keep_the_assumed(
        bench: Bench) -> None:
    _record_epochs(bench, 60.0, [0.5, 0.7, 1.0])
    with bench.factory() as session:
        assert _fitted(session, "cpu").source == "fitted from 3 epochs on cpu"
    _record_epochs(bench, 200.0, [0.6, 0.8])
    with bench.factory() as session:
        fitted = _fitted(session, "cpu")
        assert abs(fitted.host_w - HOST_W) < 1e-6 and abs(fitted.compute_w - COMPUTE_W) < 1e-6
        assert abs(fitted.overhead_s - OVERHEAD_S) < 1e-6 and fitted.resume_s == 30.0
        assert fitted.source == "fitted from 5 epochs on cpu"
        assert _fitted(session, "h200").source == "assumed"  # nothing measured there


def test_the_worker_plans_with_the_fitted_model_and_the_job_page_says_so(bench: Bench) -> None:
    job_id = bench.job(rho_policy={"type": "fixed", "rho": 0.5})
    _record_epochs(bench, 60.0, [0.5, 0.7, 1.0, 0.6])
    assert run_job(job_id, factory=bench.factory, settings=bench.settings, pool=bench.pool,
                   store=bench.store, me=bench.me) == "succeeded"
    with bench.factory() as session:
        series = job_series(session, session.get_one(Job, job_id))
        notes = " ".join(estimate_notes(series))
    # The run's own epochs are measured too: the first decision saw 4 epochs, the second 5
    # (when CodeCarbon measured the first; it may not on every machine).
    assert series.energy_models and series.energy_models[0] == "fitted from 4 epochs on cpu"
    assert "energy model was fitted from 4 epochs on cpu" in notes
    assert "assumed powers" not in notes


def test_a_job_planned_with_the_assumed_model_says_so() -> None:
    series = JobSeries(job_id="j", reference_g_per_kwh=None, reference_source=None, epochs=[],
                       totals=Totals(), energy_models=["assumed"])
    assert "assumed powers" in " ".join(estimate_notes(series))
