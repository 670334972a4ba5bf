"""A job of ``gpus: 2`` end to end on CPU: a worker of two devices (``--gpus 0,1``, gloo), the
dispatcher reserving both of its slots for the job, rank 0 in the Celery worker and rank 1
spawned. The job succeeds; its epochs record the FLOPs of both ranks (those of the same job on
one device); both slots are held while it runs and free after."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from service.models import WorkerSlot
from tests.e2e.conftest import Stack

TERMINAL = {"succeeded", "failed", "cancelled"}
# Each rank counts the FLOPs of its half of each batch; their sum is the whole batch's count up
# to the padding of the halves (tests/core/test_distributed.py).
FLOPS_RTOL = 0.02
LOSS_RTOL = 1e-4  # two half-batches summed in another order (tests/core/test_distributed.py)


def _held(stack: Stack, job_id: str) -> list[str]:
    with stack.factory() as session:
        return sorted(session.scalars(select(WorkerSlot.name).where(WorkerSlot.job_id == job_id)))


def _taken(stack: Stack, team: dict[str, str], job_id: str) -> bool:
    events = stack.client.get(f"/jobs/{job_id}/events", params={"limit": 500},
                              headers=team).json()["data"]
    return any(e["type"] == "worker" for e in events)


def _slots(stack: Stack) -> list[WorkerSlot]:
    with stack.factory() as session:
        return list(session.scalars(select(WorkerSlot).where(
            WorkerSlot.gpu_class == stack.gpu_class)))


def _run(stack: Stack, team: dict[str, str], dataset: str, gpus: int) -> tuple[dict[str, Any],
                                                                               list[str]]:
    """Submit, note the slots the job holds once it runs, wait for its end."""
    r = stack.client.post("/jobs", headers=team, json={
        "model": str(stack.model_dir), "training_dataset": dataset, "gpu_class": stack.gpu_class,
        "gpus": gpus, "hyperparameters": {"epochs": 2, "batch_size": 4, "seed": 0},
        "rho_policy": {"type": "fixed", "rho": 0.5}})
    assert r.status_code == 201, r.text
    assert r.json()["gpus"] == gpus
    job_id = r.json()["id"]
    running = stack.wait(team, job_id, lambda j: _taken(stack, team, j["id"]), timeout=60)
    held = _held(stack, job_id)  # once the worker has taken it: training, or about to
    try:
        job = stack.wait(team, job_id, lambda j: j["status"] in TERMINAL, timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.worker_log()[-5000:]}") from None
    assert running["status"] in {"running", "succeeded"}
    return job, held


def test_a_two_gpu_job_holds_both_slots_and_records_both_ranks_flops(
        production_stack: Stack) -> None:
    stack = production_stack
    started = time.monotonic()
    stack.start_worker(None, "--gpus", "0,1")
    deadline = time.monotonic() + 60
    while len(_slots(stack)) < 2:  # the worker's two slots, one per device
        assert time.monotonic() < deadline, stack.worker_log()[-3000:]
        time.sleep(0.2)
    slot_names = sorted(s.name for s in _slots(stack))
    assert len({s.worker for s in _slots(stack)}) == 1

    team = stack.team()
    dataset = stack.dataset(team, rows=12)
    job, held = _run(stack, team, dataset, gpus=2)
    assert job["status"] == "succeeded", (job, stack.worker_log()[-4000:])
    assert held == slot_names  # both slots, reserved at dispatch, held while it ran
    assert _held(stack, job["id"]) == []  # and given back
    two = stack.client.get(f"/jobs/{job['id']}/epochs", headers=team).json()

    # The same job on one device of the same worker (the only one: it takes the whole worker).
    single, held_single = _run(stack, team, dataset, gpus=1)
    assert single["status"] == "succeeded", single
    assert held_single == slot_names
    one = stack.client.get(f"/jobs/{single['id']}/epochs", headers=team).json()
    assert [e["epoch_index"] for e in two] == [e["epoch_index"] for e in one] == [0, 1]
    for a, b in zip(two, one, strict=True):
        assert a["selected_tensor_names"] == b["selected_tensor_names"]
        # The same trajectory as one process on the same global batch.
        assert a["loss"] == pytest.approx(b["loss"], rel=LOSS_RTOL)
        # Not rank 0's half: both ranks' FLOPs.
        assert a["executed_flops"] == pytest.approx(b["executed_flops"], rel=FLOPS_RTOL)
        assert a["energy_kwh"] is not None
    assert job["result"]["executed_flops"] == pytest.approx(sum(e["executed_flops"] for e in two))
    assert all(s.job_id is None for s in _slots(stack))
    print(f"gpus=2 e2e wall time: {time.monotonic() - started:.1f} s")
