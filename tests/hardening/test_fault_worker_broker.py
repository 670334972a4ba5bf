"""The broker and the worker fail under real jobs (a private Redis, real `greentrainer worker`
processes, the dispatcher loop, a fresh Postgres database on the shared server):

- Redis is killed while one job runs and others wait, a job is submitted while it is down,
  and Redis comes back empty: every job ends `succeeded`, each epoch recorded once (the
  database is the source of truth; the reconciler re-sends what the broker forgot);
- the worker is SIGKILLed at a random moment, then replaced, ``GT_KILL_RUNS`` times (2 in CI;
  `GT_KILL_RUNS=20` for the full run in docs/reliability.md): every job ends `succeeded` with
  each epoch counted once.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.e2e.conftest import Stack, _stack
from tests.hardening.private_services import PrivateRedis, redis_available
from tests.service.conftest import PostgresDatabases, _pg_admin_url

TERMINAL = ("succeeded", "failed", "cancelled")
JOB = {"hyperparameters": {"epochs": 3, "batch_size": 2, "max_length": 64},
       "rho_policy": {"type": "fixed", "rho": 0.8}}
KILL_RUNS = int(os.environ.get("GT_KILL_RUNS", "2"))


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    require(redis_available(), "redis-server binary")
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.kill()


@pytest.fixture
def stack(tmp_path: Path, private_redis: PrivateRedis) -> Iterator[Stack]:
    admin = _pg_admin_url()
    require(admin is not None, "Postgres on 127.0.0.1:5432 (database `test`)")
    assert admin is not None
    databases = PostgresDatabases(admin)
    try:
        yield from _stack(tmp_path, databases.create(), private_redis.url)
    finally:
        databases.drop_all()


def _epochs(stack: Stack, team: dict[str, str], job_id: str) -> list[int]:
    epochs = stack.client.get(f"/jobs/{job_id}/epochs", headers=team).json()
    return [e["epoch_index"] for e in epochs]


def _started(stack: Stack, team: dict[str, str], job_id: str) -> bool:
    events = stack.client.get(f"/jobs/{job_id}/events", params={"limit": 500},
                              headers=team).json()["data"]
    return any(e["type"] == "epoch_start" for e in events)


def test_redis_restart_loses_no_job(stack: Stack, private_redis: PrivateRedis) -> None:
    stack.start_worker()
    team = stack.team(max_concurrent_jobs=10)
    jobs = [stack.submit(team, **JOB) for _ in range(3)]
    stack.wait(team, jobs[0], lambda j: _started(stack, team, j["id"]))
    private_redis.kill()  # the running job's message and the queue are gone
    asked = time.monotonic()
    jobs.append(stack.submit(team, **JOB))  # recorded although the broker is down
    submit_s = time.monotonic() - asked
    time.sleep(1.0)
    private_redis.start()  # empty: no persistence
    for job_id in jobs:
        job = stack.wait(team, job_id, lambda j: j["status"] in TERMINAL, timeout=300)
        assert job["status"] == "succeeded", job
        assert _epochs(stack, team, job_id) == [0, 1, 2]
    assert submit_s < 15, f"a submission during the outage took {submit_s:.1f} s"


def _last_epoch(stack: Stack, team: dict[str, str], job_id: str) -> int:
    job = stack.client.get(f"/jobs/{job_id}", headers=team).json()
    if job["status"] in TERMINAL:
        return 99
    return -1 if job["last_finished_epoch"] is None else int(job["last_finished_epoch"])


def test_worker_sigkilled_at_random_points_every_job_succeeds_once(stack: Stack) -> None:
    """Each run picks a phase (before training starts, after epoch 0, 1 or 2: the last one is
    during evaluation and artifact writing) and a random extra delay, and SIGKILLs the worker
    there; a fresh worker must finish the job."""
    rng = random.Random(int(os.environ.get("GT_KILL_SEED", "7")))
    team = stack.team(max_concurrent_jobs=10)
    kills = []
    for _run in range(KILL_RUNS):
        worker = stack.start_worker()
        job_id = stack.submit(team, **JOB)
        phase, extra = rng.choice([-2, -1, 0, 1, 2]), rng.uniform(0.0, 1.5)
        while worker.poll() is None:  # -2: any time in start-up; -1: once training began
            done = _last_epoch(stack, team, job_id)
            if done >= phase and (phase != -1 or _started(stack, team, job_id)):
                break
            time.sleep(0.05)
        time.sleep(extra)
        worker.kill()
        worker.wait()
        kills.append((phase, round(extra, 2), _last_epoch(stack, team, job_id)))
        stack.start_worker()
        job = stack.wait(team, job_id, lambda j: j["status"] in TERMINAL, timeout=300)
        assert job["status"] == "succeeded", (kills, job)
        assert _epochs(stack, team, job_id) == [0, 1, 2], kills
        stack.kill_workers()
        stack.workers.clear()
    print("kills (phase, extra s, last finished epoch at the kill; 99 = already done):", kills)
