"""The task body for a job of ``gpus: 2`` (two gloo ranks on CPU, rank 0 in this process): it
resumes from its checkpoint on both ranks after a crash, with the losses and FLOPs of the same
job run straight on one device; a worker with fewer devices does not run it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from service.models import JobEpoch, JobEvent
from tests.worker.conftest import Bench, crash_then_expire
from worker.runner import WorkerIdentity, run_job

LOSS_RTOL = 1e-4  # half-batches summed in another order (tests/core/test_distributed.py)
FLOPS_RTOL = 0.02  # each half-batch padded to its own longest row


def run(bench: Bench, job_id: str) -> str:
    return run_job(job_id, factory=bench.factory, settings=bench.settings, pool=bench.pool,
                   store=bench.store, me=bench.me)


def epochs(bench: Bench, job_id: str) -> list[JobEpoch]:
    with bench.factory() as session:
        return list(session.scalars(select(JobEpoch).where(JobEpoch.job_id == job_id)
                                    .order_by(JobEpoch.epoch_index)))


def test_a_two_gpu_job_resumes_on_both_ranks_and_matches_one_device(
        bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    straight = bench.job()
    assert run(bench, straight) == "succeeded"

    bench.me = WorkerIdentity("pair", "cpu", gpu_ids=[0, 1])
    job_id = bench.job(gpus=2)
    crash_then_expire(bench, job_id, monkeypatch, run)
    bench.me = WorkerIdentity("another-pair", "cpu", gpu_ids=[0, 1])
    assert run(bench, job_id) == "succeeded"
    with bench.factory() as session:
        types = list(session.scalars(select(JobEvent.type).where(JobEvent.job_id == job_id)))
    assert types.count("resumed") == 1 and types.count("epoch") == 2

    two, one = epochs(bench, job_id), epochs(bench, straight)
    assert [(e.epoch_index, e.rho) for e in two] == [(0, 0.5), (1, 1.0)]
    for a, b in zip(two, one, strict=True):
        assert a.selected_tensor_names == b.selected_tensor_names
        assert a.loss == pytest.approx(b.loss, rel=LOSS_RTOL)
        assert a.executed_flops == pytest.approx(b.executed_flops, rel=FLOPS_RTOL)
        assert a.energy_kwh is not None and a.energy_kwh > 0


def test_a_worker_with_fewer_devices_gives_the_job_back(bench: Bench) -> None:
    job_id = bench.job(gpus=2)
    assert run(bench, job_id) == "retried"  # a crash of this try: the dispatcher places it again
    job = bench.read(job_id)
    assert job.status == "queued" and epochs(bench, job_id) == []
    with bench.factory() as session:
        messages = list(session.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id)))
    assert any("asks for 2 devices" in m for m in messages), messages
