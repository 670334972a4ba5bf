"""The task body: idempotent on re-delivery, resumable, and bounded in its retries."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

import worker.runner as runner_module
from service.jobs import transition
from service.models import JobEpoch, JobEvent, utcnow
from service.settings import PoolSettings
from service.states import JobStatus
from tests.worker.conftest import Bench, crash_then_expire
from worker.energy import EpochEnergy
from worker.runner import run_job


def run(bench: Bench, job_id: str) -> str:
    return run_job(job_id, factory=bench.factory, settings=bench.settings, pool=bench.pool,
                   store=bench.store, me=bench.me)


def epochs(bench: Bench, job_id: str) -> list[tuple[int, float]]:
    with bench.factory() as session:
        return [(e.epoch_index, e.rho) for e in session.scalars(
            select(JobEpoch).where(JobEpoch.job_id == job_id).order_by(JobEpoch.epoch_index))]


def test_a_redelivered_task_for_a_finished_job_does_nothing(bench: Bench) -> None:
    job_id = bench.job()
    assert run(bench, job_id) == "succeeded"
    assert run(bench, job_id) == "skipped: already succeeded"
    assert epochs(bench, job_id) == [(0, 0.5), (1, 1.0)]
    assert bench.read(job_id).attempts == 1


@pytest.mark.parametrize("values", [
    {"status": "queued"},
    # The lease's expiry is set when the test runs (a value computed at collection time would
    # have expired on a slow machine before this test is reached).
    {"lease_owner": "other", "lease_expires_in": timedelta(minutes=5)},
])
def test_a_job_not_dispatched_or_held_by_a_live_worker_is_left_alone(bench: Bench,
                                                                     values: dict) -> None:
    values = dict(values)
    if "lease_expires_in" in values:
        values["lease_expires_at"] = utcnow() + values.pop("lease_expires_in")
    job_id = bench.job(**values)
    assert run(bench, job_id).startswith("skipped")
    assert bench.read(job_id).attempts == 0 and epochs(bench, job_id) == []


def test_a_job_with_an_expired_lease_is_taken_over_and_resumes_from_its_checkpoint(
        bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = bench.job()
    crash_then_expire(bench, job_id, monkeypatch, run)
    bench.me = runner_module.WorkerIdentity("another", "cpu")
    assert run(bench, job_id) == "succeeded"
    assert epochs(bench, job_id) == [(0, 0.5), (1, 1.0)]
    with bench.factory() as session:
        types = list(session.scalars(select(JobEvent.type).where(JobEvent.job_id == job_id)))
    assert types.count("resumed") == 1 and types.count("epoch") == 2
    assert bench.read(job_id).attempts == 2


def test_bad_job_input_fails_at_once_with_a_named_error(bench: Bench, tmp_path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    job_id = bench.job(model=str(tmp_path / "models" / "nothing-here"))
    with caplog.at_level(logging.INFO, logger="worker.runner"):
        assert run(bench, job_id) == "failed"
    job = bench.read(job_id)
    assert job.status == "failed" and job.error_code == "model_load_error"
    assert job.attempts == 1
    assert f"job {job_id} failed: model_load_error: {job.error_message}" in caplog.messages


def test_a_crashing_job_is_retried_then_failed_after_max_attempts(
        bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(runner_module, "load_inputs", explode)
    job_id = bench.job()
    assert run(bench, job_id) == "retried"
    assert bench.read(job_id).status == "queued"
    with bench.factory.begin() as session:  # the dispatcher starts it again
        session.get(runner_module.Job, job_id).status = "running"  # type: ignore[union-attr]
    assert run(bench, job_id) == "retried"
    job = bench.read(job_id)
    assert job.status == "failed" and job.error_code == "too_many_attempts"
    assert "illegal memory access" in (job.error_message or "")


def test_a_cancel_stops_training_between_steps(bench: Bench,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = bench.job(hyperparameters={"epochs": 50, "batch_size": 1, "max_length": 64},
                       rho_policy={"type": "fixed", "rho": 0.5})
    step = runner_module._JobRun._step

    def cancel_on_first_step(self: runner_module._JobRun, event: object) -> None:
        step(self, event)
        with bench.factory.begin() as session:
            job = session.get(runner_module.Job, job_id)
            if job is not None and job.status == "running":
                transition(session, job, JobStatus.CANCELLED)

    monkeypatch.setattr(runner_module._JobRun, "_step", cancel_on_first_step)
    assert run(bench, job_id) == "stopped"
    assert bench.read(job_id).status == "cancelled"
    assert len(epochs(bench, job_id)) < 50


def test_a_job_out_of_co2_budget_stops_early_with_what_it_trained(
        bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two-second epochs expected; the first one is recorded at almost the whole budget.
    bench.settings = bench.settings.model_copy(update={"pool": PoolSettings(
        default_epoch_seconds=2.0)})
    spent = EpochEnergy(energy_kwh=0.04, kg_co2=0.00999, cpu_kwh=0.04, gpu_kwh=0.0, ram_kwh=0.0,
                        is_estimate=True)
    monkeypatch.setattr(runner_module.EnergyMeter, "stop", lambda self: spent)
    job_id = bench.job(hyperparameters={"epochs": 3, "batch_size": 4, "max_length": 64},
                       rho_policy={"type": "carbon-aware", "rho_min": 0.4, "rho_max": 1.0,
                                   "region": "GB", "co2_budget_kg": 0.01})
    assert run(bench, job_id) == "succeeded"
    job = bench.read(job_id)
    assert len(epochs(bench, job_id)) == 1
    assert job.result is not None and "CO2 budget" in job.result["stopped_early"]


def test_a_job_whose_budget_pays_for_no_epoch_fails_naming_it(bench: Bench) -> None:
    job_id = bench.job(hyperparameters={"epochs": 3, "batch_size": 4, "max_length": 64},
                       rho_policy={"type": "carbon-aware", "rho_min": 0.4, "rho_max": 1.0,
                                   "region": "GB", "co2_budget_kg": 1e-12})
    assert run(bench, job_id) == "failed"
    job = bench.read(job_id)
    assert epochs(bench, job_id) == [] and job.error_message is not None
    assert "CO2 budget exhausted" in job.error_message


def test_a_job_with_a_test_set_reports_rouge_in_its_result(
        bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    job_id = bench.job(test_dataset_id=bench.dataset_id,
                       hyperparameters={"epochs": 1, "batch_size": 4, "max_length": 64})
    with caplog.at_level(logging.INFO, logger="worker.runner"):
        assert run(bench, job_id) == "succeeded"
    result = bench.read(job_id).result
    assert result is not None
    rouge = result["rouge"]
    assert rouge["n"] == 8 and 0 <= rouge["rouge1"] <= 100 and set(rouge) >= {"rouge2", "rougeL"}
    # The worker's log says what the job's result holds.
    share = result["executed_flops"] / result["full_ft_flops"]
    assert (f"job {job_id} succeeded: 1 epoch(s), {share:.0%} of full fine-tuning's FLOPs, "
            f"{result['energy_kwh']:.3g} kWh, {result['kg_co2']:.3g} kg CO2, "
            f"ROUGE-L {rouge['rougeL']:.1f} on 8 examples") in caplog.messages


def test_a_worker_that_lost_its_job_leaves_the_new_holders_slot_alone(bench: Bench) -> None:
    from service.models import WorkerSlot
    from service.pool import slots
    from worker import claims

    job_id = bench.job(lease_owner="me", lease_expires_at=utcnow() + timedelta(minutes=1))
    with bench.factory.begin() as session:
        for name in ("me", "new-holder"):
            slots.heartbeat(session, name, gpu_class="cpu", hostname="h", pid=1, gpu_ids=None)
        slots.take(session, "new-holder", job_id)
        job = session.get(runner_module.Job, job_id)
        job.lease_owner = "new-holder"  # type: ignore[union-attr]
    claims.end(bench.factory, job_id, bench.me, bench.pool, "failed", code="x",
               message="late error from the old worker")
    with bench.factory() as session:
        assert session.get(WorkerSlot, "new-holder").job_id == job_id  # type: ignore[union-attr]
    assert bench.read(job_id).status == "running"
