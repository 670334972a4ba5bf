"""A team pauses a running job: the real worker finishes the current epoch, keeps its
checkpoint, frees its GPU slot and the job shows `paused`; resumed, a worker picks it up from
that checkpoint and it finishes with every epoch trained and its energy counted once (Postgres +
Redis + a real worker process)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_crash_and_cancel import TERMINAL, _epoch_started, _held_slots, _long_dataset_job


def test_pause_at_the_epoch_boundary_frees_the_slot_and_resume_finishes_every_epoch_once(
        production_stack: Stack) -> None:
    stack = production_stack
    stack.start_worker()
    team = stack.team()
    job_id = _long_dataset_job(stack, team)  # 3 epochs
    stack.wait(team, job_id, lambda j: _epoch_started(stack, team, j["id"], 0))
    r = stack.client.post(f"/jobs/{job_id}/pause", headers=team)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "running" and r.json()["pause"]["pending"] is True

    job = stack.wait(team, job_id, lambda j: j["status"] in ("paused", *TERMINAL))
    assert job["status"] == "paused", job
    assert job["pause"]["reason"] == "user" and job["pause"]["pending"] is False
    paused_after = job["last_finished_epoch"]
    assert paused_after in (0, 1)  # the epoch running when asked (or the next, if it just ended)
    asked = time.monotonic()
    while any(_held_slots(stack)):
        assert time.monotonic() - asked < 10, "the paused job kept its GPU slot"
        time.sleep(0.1)
    time.sleep(2)  # several scheduler passes: a team's pause is not resumed by the schedule
    job = stack.client.get(f"/jobs/{job_id}", headers=team).json()
    assert job["status"] == "paused" and job["last_finished_epoch"] == paused_after
    epochs = stack.client.get(f"/jobs/{job_id}/epochs", headers=team).json()
    assert [e["epoch_index"] for e in epochs] == list(range(paused_after + 1))

    r = stack.client.post(f"/jobs/{job_id}/resume", headers=team)
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    job = stack.wait(team, job_id, lambda j: j["status"] in TERMINAL)
    assert job["status"] == "succeeded", job

    epochs = stack.client.get(f"/jobs/{job_id}/epochs", headers=team).json()
    assert [e["epoch_index"] for e in epochs] == [0, 1, 2]
    result = job["result"]
    assert result["epochs"] == 3
    assert result["energy_kwh"] == pytest.approx(sum(e["energy_kwh"] or 0 for e in epochs))
    assert result["kg_co2"] == pytest.approx(sum(e["kg_co2"] or 0 for e in epochs))
    events = stack.client.get(f"/jobs/{job_id}/events", params={"limit": 1000},
                              headers=team).json()["data"]
    types = [e["type"] for e in events]
    assert types.count("epoch") == 3 and types.count("paused") == 1
    assert [e["data"]["epoch_index"] for e in events if e["type"] == "epoch_start"] == [0, 1, 2]
    checkpoint = [e for e in events if e["type"] == "resumed" and "checkpoint" in e["message"]]
    assert len(checkpoint) == 1 and checkpoint[0]["data"]["epoch_index"] == paused_after
    assert not any(_held_slots(stack))
