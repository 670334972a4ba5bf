"""A migrated SQLite database with a team, a stored data set and the tiny model on disk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory, upgrade
from service.models import Dataset, Job, Team, new_id, utcnow
from service.settings import PoolSettings, Settings
from service.storage import LocalBlobStore
from tests.core.tiny import ROWS
from tests.e2e.conftest import write_tiny_model
from worker.runner import WorkerIdentity


@dataclass
class Bench:
    factory: sessionmaker[Session]
    settings: Settings
    pool: PoolSettings
    store: LocalBlobStore
    team_id: str
    dataset_id: str
    model_dir: Path
    me: WorkerIdentity

    def job(self, **values: Any) -> str:
        now = utcnow()
        with self.factory.begin() as session:
            row = Job(id=new_id("job"), team_id=self.team_id,
                      model=values.pop("model", str(self.model_dir)),
                      model_source="local_path", method=values.pop("method", "greentrainer"),
                      hyperparameters=values.pop("hyperparameters",
                                                 {"epochs": 2, "batch_size": 4,
                                                  "max_length": 64}),
                      rho_policy=values.pop("rho_policy", {"type": "schedule",
                                                           "rhos": [0.5, 1.0]}),
                      training_dataset_id=values.pop("training_dataset_id", self.dataset_id),
                      status=values.pop("status", "running"), gpu_class="cpu",
                      created_at=now, updated_at=now, attempts=values.pop("attempts", 0),
                      **values)
            session.add(row)
        return row.id

    def read(self, job_id: str) -> Job:
        with self.factory() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bench:
    monkeypatch.setenv("GREENTRAINER_CARBON_PROVIDERS", "static")
    return make_bench(tmp_path, f"sqlite:///{tmp_path / 'w.sqlite'}")


def make_bench(tmp_path: Path, url: str) -> Bench:
    """A bench on the database at ``url`` (migrated here)."""
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    store = LocalBlobStore(tmp_path / "blobs")
    data = "".join(f'{{"source": "{s}", "target": "{t}"}}\n' for s, t in ROWS).encode()
    key, digest = store.put("datasets", data, suffix=".jsonl")
    with factory.begin() as session:
        team = Team(id=new_id("team"), name="t", max_concurrent_jobs=2)
        session.add(team)
        session.flush()
        dataset = Dataset(id=new_id("ds"), team_id=team.id, name="d", format="jsonl",
                          sha256=digest, size_bytes=len(data), row_count=len(ROWS),
                          source_field="source", target_field="target", storage_key=key)
        session.add(dataset)
    return Bench(factory, Settings(database_url=url, data_dir=tmp_path), PoolSettings(
        lease_seconds=30, heartbeat_seconds=0.2, max_attempts=2), store, team.id, dataset.id,
        write_tiny_model(tmp_path / "models" / "tiny"), WorkerIdentity("me", "cpu"))


def crash_then_expire(bench: Bench, job_id: str, monkeypatch: pytest.MonkeyPatch,
                      run: Callable[[Bench, str], str]) -> None:
    """Run ``job_id`` until epoch 0 is recorded, then die (KeyboardInterrupt, as a killed
    worker process) and let the dead worker's lease run out: the job waits for a new taker."""
    import worker.runner as runner_module

    finished = runner_module._JobRun._epoch_finished

    def crash_after_first(self: runner_module._JobRun, trainer: Any, record: Any) -> None:
        finished(self, trainer, record)
        raise KeyboardInterrupt  # the process dies right after epoch 0 was recorded

    monkeypatch.setattr(runner_module._JobRun, "_epoch_finished", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        run(bench, job_id)
    monkeypatch.setattr(runner_module._JobRun, "_epoch_finished", finished)
    with bench.factory.begin() as session:
        job = session.get(Job, job_id)
        job.lease_expires_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
