"""The artifact disk fills up while a finished job writes its outputs (the store's writes raise
ENOSPC part-way through a file): the job ends `failed` with an error that says the disk is
full, no artifact is recorded (so none is served, not even the ones written before the
failure), and no half-written file is left in the store."""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest
from sqlalchemy import select

import service.storage
from service.models import Artifact
from service.settings import PoolSettings
from tests.worker.conftest import Bench, bench  # noqa: F401  (the fixture)
from worker.runner import run_job

FREE_BYTES = 1024  # what is left on the "disk" once the first artifact is stored


class _FillingFile:
    """A file object whose writes fail with ENOSPC once the shared budget is spent."""

    def __init__(self, handle: Any, budget: list[int]) -> None:
        self._handle, self._budget = handle, budget

    def write(self, data: bytes) -> int:
        if len(data) > self._budget[0]:
            self._handle.write(data[: self._budget[0]])  # a partial write, then the error
            self._budget[0] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget[0] -= len(data)
        return int(self._handle.write(data))

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def test_a_full_artifact_disk_fails_the_job_clearly_and_serves_nothing_half_written(
        bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    real_fdopen = os.fdopen
    budget, opened = [FREE_BYTES], [0]

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(fd, mode, *args, **kwargs)
        if "w" not in mode:
            return handle
        opened[0] += 1  # the first artifact (the model archive) still fits
        return handle if opened[0] == 1 else _FillingFile(handle, budget)

    monkeypatch.setattr(service.storage.os, "fdopen", fdopen)
    bench.pool = PoolSettings(lease_seconds=30, heartbeat_seconds=0.2, max_attempts=1)
    job_id = bench.job()
    assert run_job(job_id, factory=bench.factory, settings=bench.settings, pool=bench.pool,
                   store=bench.store, me=bench.me) == "retried"
    job = bench.read(job_id)
    assert job.status == "failed", (job.status, job.error_message)
    assert "No space left on device" in (job.error_message or ""), job.error_message
    assert "disk_full" in (job.error_message or "")
    with bench.factory() as session:
        # Checkpoints of finished epochs were complete when registered and stay downloadable;
        # none of the job's outputs is registered, and every file served is whole.
        kept = list(session.scalars(select(Artifact).where(Artifact.job_id == job_id)))
        assert {a.kind for a in kept} <= {"checkpoint"}, [a.kind for a in kept]
        for artifact in kept:
            assert bench.store.local_path(artifact.storage_key).stat().st_size == artifact.size_bytes
    leftovers = [p.name for p in bench.store.root.rglob(".upload-*")]
    assert leftovers == [], leftovers
