"""Postgres is restarted (`pg_ctl -m immediate stop`, then start) while a real `greentrainer
worker` process holds a running job's lease in the middle of epoch 1 (a private cluster and a
private Redis; lease 4 s, renewal every 0.5 s, so every outage outlasts several renewals):

- a short outage (the lease has not expired when the database is back): the worker rides it
  out and finishes the job itself;
- a long one (the lease expires meanwhile): either the worker goes on or the reconciler
  re-queues the job and a run resumes from the last checkpoint.

Either way the worker process stays up, the job ends `succeeded` and each epoch is recorded
exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.e2e.conftest import Stack, _stack
from tests.hardening.private_services import (
    PrivatePostgres,
    PrivateRedis,
    redis_available,
)

TERMINAL = ("succeeded", "failed", "cancelled")
EPOCHS = 3
ROWS_PER_EPOCH = 48  # batch 1: an epoch of several seconds, so the outage lands inside epoch 1
JOB = {"hyperparameters": {"epochs": EPOCHS, "batch_size": 1, "max_length": 64}, "rho_policy": {"type": "fixed", "rho": 0.8}}


@pytest.fixture
def stack(tmp_path: Path, pg: PrivatePostgres) -> Iterator[Stack]:
    require(redis_available(), "redis-server binary")
    redis = PrivateRedis()
    redis.start()
    try:
        yield from _stack(tmp_path, pg.create_database("gt_lease"), redis.url)
    finally:
        redis.kill()


def _get(stack: Stack, team: dict[str, str], path: str, **params: Any) -> Any:
    """The API's answer, or None while it answers 503 (the database is still coming back)."""
    r = stack.client.get(path, headers=team, params=params)
    if r.status_code == 503:
        return None
    assert r.status_code == 200, r.text[:300]
    return r.json()


def _submit_long_job(stack: Stack, team: dict[str, str]) -> str:
    from tests.core.tiny import ROWS

    lines = [f'{{"source": "{s} {i}", "target": "{t}"}}' for i, (s, t) in enumerate((ROWS * 12)[:ROWS_PER_EPOCH])]
    r = stack.client.post("/datasets", files={"file": ("long.jsonl", "\n".join(lines).encode())}, headers=team)
    assert r.status_code in (200, 201), r.text
    r = stack.client.post(
        "/jobs",
        json={"model": str(stack.model_dir), "gpu_class": stack.gpu_class, "training_dataset": r.json()["id"], **JOB},
        headers=team,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _events(stack: Stack, team: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    page = _get(stack, team, f"/jobs/{job_id}/events", limit=500)
    return [] if page is None else list(page["data"])


def _wait(what: str, ready: Any, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("outage_s", [2.0, 8.0], ids=["lease-holds", "lease-expires"])
def test_postgres_restart_under_a_leased_job_loses_and_doubles_no_epoch(
    stack: Stack, pg: PrivatePostgres, outage_s: float
) -> None:
    worker = stack.start_worker()
    team = stack.team()
    job_id = _submit_long_job(stack, team)
    _wait(
        "epoch 1 to start",
        lambda: any(e["type"] == "epoch_start" and e["data"]["epoch_index"] == 1 for e in _events(stack, team, job_id)),
    )
    pg.stop()  # immediate: every open connection of the worker, API and loop breaks
    time.sleep(outage_s)
    pg.start()
    job = _wait(
        "the job to end", lambda: (j := _get(stack, team, f"/jobs/{job_id}")) is not None and j["status"] in TERMINAL and j
    )
    log = (Path(stack.settings.data_dir) / "worker-0.log").read_text(errors="replace")
    assert worker.poll() is None, f"the worker exited ({worker.returncode}):\n{log[-3000:]}"
    assert job["status"] == "succeeded", (job, log[-3000:])
    epochs = _get(stack, team, f"/jobs/{job_id}/epochs")
    assert [e["epoch_index"] for e in epochs] == list(range(EPOCHS))
    types = [e["type"] for e in _events(stack, team, job_id)]
    assert types.count("epoch") == EPOCHS, types
    how = "re-queued, resumed from a checkpoint" if "resumed" in types else "the same run went on"
    print(f"outage {outage_s} s: {how}; events {types}")


OUTAGE_S = 3.0


def test_an_epoch_commit_during_a_postgres_restart_waits_for_it_in_the_same_run(
    pg: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic: the database stops right after epoch 0's checkpoint is written, before its
    row is committed, and is back ``OUTAGE_S`` later. The worker (in process, one attempt
    allowed, so a retry cannot hide a failure) waits and commits: the same run finishes."""
    import threading

    from greentrainer_core.train import Trainer
    from service.models import JobEpoch
    from service.settings import PoolSettings
    from tests.worker.conftest import make_bench
    from worker.runner import run_job

    monkeypatch.setenv("GREENTRAINER_CARBON_PROVIDERS", "static")
    bench = make_bench(tmp_path, pg.create_database("gt_commit"))
    bench.pool = PoolSettings(lease_seconds=20, heartbeat_seconds=0.2, max_attempts=1)
    job_id = bench.job()  # 2 epochs
    real_save, restarts = Trainer.save_checkpoint, []

    def save_then_lose_the_database(self: Trainer, path: Any) -> None:
        real_save(self, path)
        if not restarts:
            pg.stop()
            restarts.append(threading.Timer(OUTAGE_S, pg.start))
            restarts[0].start()

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_lose_the_database)
    outcome = run_job(job_id, factory=bench.factory, settings=bench.settings, pool=bench.pool, store=bench.store, me=bench.me)
    restarts[0].join()
    job = bench.read(job_id)
    assert (outcome, job.status, job.attempts) == ("succeeded", "succeeded", 1), job.error_message
    with bench.factory() as session:
        from sqlalchemy import select

        epochs = list(
            session.scalars(select(JobEpoch.epoch_index).where(JobEpoch.job_id == job_id).order_by(JobEpoch.epoch_index))
        )
    assert epochs == [0, 1]


def test_a_postgres_restart_while_the_job_loads_is_waited_for_not_a_crash(
    pg: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by benchmarks/chaos.py: the run's first session stays open while the model and data
    load (seconds); a restart meanwhile broke its connection and the try crashed as a
    `training_error`, spending an attempt. Deterministic here: the database stops as the inputs
    finish loading and is back ``OUTAGE_S`` later; with one attempt allowed the run loads again
    and finishes."""
    import threading

    import worker.runner
    from service.settings import PoolSettings
    from tests.worker.conftest import make_bench

    monkeypatch.setenv("GREENTRAINER_CARBON_PROVIDERS", "static")
    bench = make_bench(tmp_path, pg.create_database("gt_load"))
    bench.pool = PoolSettings(lease_seconds=20, heartbeat_seconds=0.2, max_attempts=1)
    job_id = bench.job()
    real_load, restarts = worker.runner.load_inputs, []

    def load_then_lose_the_database(*args: Any, **kwargs: Any) -> Any:
        inputs = real_load(*args, **kwargs)
        if not restarts:
            pg.stop()
            restarts.append(threading.Timer(OUTAGE_S, pg.start))
            restarts[0].start()
        return inputs

    monkeypatch.setattr(worker.runner, "load_inputs", load_then_lose_the_database)
    outcome = worker.runner.run_job(job_id, factory=bench.factory, settings=bench.settings, pool=bench.pool,
                                    store=bench.store, me=bench.me)
    restarts[0].join()
    job = bench.read(job_id)
    assert (outcome, job.status, job.attempts) == ("succeeded", "succeeded", 1), job.error_message


def test_a_worker_started_while_postgres_is_down_waits_for_it(pg: PrivatePostgres, tmp_path: Path) -> None:
    """Found by benchmarks/chaos.py: a worker process started during a Postgres restart exited
    with a traceback (status 1) at its schema check. It now waits (up to
    `STARTUP_DATABASE_PATIENCE_S`), says so in its log, and registers its slot once the
    database is back."""
    import os
    import subprocess
    import sys

    import psycopg

    from service.db import upgrade

    require(redis_available(), "redis-server binary")
    url = pg.create_database("gt_start")
    upgrade(url)
    pg.stop()
    redis = PrivateRedis()
    redis.start()
    log_path = tmp_path / "worker.log"
    env = {**os.environ, "GREENTRAINER_DATABASE_URL": url, "GREENTRAINER_BROKER_URL": redis.url,
           "GREENTRAINER_DATA_DIR": str(tmp_path / "data"), "GREENTRAINER_LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with log_path.open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "greentrainer.cli", "worker", "--gpu-class", "startup"],
                                  env=env, stdout=log, stderr=log)
    try:
        _wait("the worker to wait for the database or exit", lambda: worker.poll() is not None
              or "database unreachable" in log_path.read_text(errors="replace"), timeout=120)
        assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
        pg.start()

        def slot_registered() -> bool:
            with psycopg.connect(url.replace("+psycopg", "")) as conn:
                return conn.execute("SELECT count(*) FROM worker_slots").fetchone() == (1,)

        _wait("the worker's slot", slot_registered, timeout=60)
        assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
    finally:
        worker.kill()
        worker.wait()
        redis.kill()
