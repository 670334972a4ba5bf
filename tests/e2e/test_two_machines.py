"""Two worker processes that share nothing but Postgres, Redis and an S3 bucket (a real moto
server; separate data directories, as on two machines): a job checkpointed by the first and
SIGKILLed is resumed by the second from the bucket, with the same losses and selections as a
run that was never interrupted and every epoch's energy counted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_crash_and_cancel import TERMINAL, _epoch_started, _long_dataset_job

LOSS_TOLERANCE = 1e-4  # the same arithmetic on the same CPU; resume restores RNG and optimizer


def _epochs(stack: Stack, team: dict[str, str], job_id: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = stack.client.get(f"/jobs/{job_id}/epochs",
                                                     headers=team).json()
    return rows


def test_a_job_killed_on_one_machine_resumes_on_another_from_the_bucket(
        s3_production_stack: Stack, tmp_path: Path) -> None:
    stack = s3_production_stack
    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"
    first = stack.start_worker(machine_a)
    team = stack.team()
    job_id = _long_dataset_job(stack, team)
    stack.wait(team, job_id, lambda j: _epoch_started(stack, team, j["id"], 1))
    first.kill()  # SIGKILL in the middle of epoch 1: epoch 0's checkpoint is in the bucket
    first.wait()
    assert stack.client.get(f"/jobs/{job_id}", headers=team).json()["last_finished_epoch"] == 0
    assert not list(machine_a.rglob("*.pt"))  # moved into the bucket, not left on machine A

    stack.start_worker(machine_b)
    job = stack.wait(team, job_id, lambda j: j["status"] in TERMINAL)
    assert job["status"] == "succeeded", (job, stack.worker_log()[-3000:])
    events = stack.client.get(f"/jobs/{job_id}/events", params={"limit": 500},
                              headers=team).json()["data"]
    assert [e["type"] for e in events].count("resumed") == 1
    takers = [e["data"]["worker"] for e in events if e["type"] == "worker"]
    assert len(set(takers)) == 2  # two different worker processes ran it

    # The same job, never interrupted, on machine B alone.
    reference = _long_dataset_job(stack, team)
    done = stack.wait(team, reference, lambda j: j["status"] in TERMINAL)
    assert done["status"] == "succeeded", done
    resumed, straight = _epochs(stack, team, job_id), _epochs(stack, team, reference)
    assert [e["epoch_index"] for e in resumed] == [0, 1, 2]
    for a, b in zip(resumed, straight, strict=True):
        assert a["selected_tensor_names"] == b["selected_tensor_names"]
        assert a["loss"] == pytest.approx(b["loss"], abs=LOSS_TOLERANCE)
        assert a["executed_flops"] == b["executed_flops"]
    result = job["result"]
    assert result["epochs"] == 3
    assert result["energy_kwh"] == pytest.approx(sum(e["energy_kwh"] or 0 for e in resumed))
    assert not list(machine_b.rglob("checkpoints/**/*.pt"))  # the finished job's are gone
