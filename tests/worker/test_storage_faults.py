"""A worker on an S3 bucket (a real moto server behind a fault proxy): checkpoints go to the
bucket before their epoch is recorded; a store that fails (5xx on a checkpoint upload, down at
the start) ends the try with `storage_unavailable`, the job is re-queued, and the next try
resumes from the stored checkpoint with every epoch recorded once; a finished job's
checkpoints leave the bucket."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from service.models import JobEvent
from service.object_store import S3BlobStore
from service.settings import PoolSettings
from tests.s3 import FaultProxy, Rule, fault_proxy, moto_server, storage_settings  # noqa: F401
from tests.worker.conftest import Bench, make_bench
from tests.worker.test_runner import epochs, run


@pytest.fixture
def s3_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             fault_proxy: FaultProxy) -> Bench:
    monkeypatch.setenv("GREENTRAINER_CARBON_PROVIDERS", "static")
    bench = make_bench(tmp_path, f"sqlite:///{tmp_path / 'w.sqlite'}")
    store = S3BlobStore(storage_settings(fault_proxy.url, max_attempts=2), tmp_path / "cache")
    with bench.factory() as session:
        from service.models import Dataset

        dataset = session.get(Dataset, bench.dataset_id)
        assert dataset is not None
        data = bench.store.local_path(dataset.storage_key).read_bytes()
    key, _ = store.put("datasets", data, suffix=".jsonl")
    assert key == dataset.storage_key  # content-addressed: the same key on every backend
    bench.store = store  # type: ignore[assignment]
    bench.pool = PoolSettings(lease_seconds=30, heartbeat_seconds=0.2, max_attempts=3)
    return bench


def _requeued(bench: Bench, job_id: str) -> str:
    with bench.factory() as session:
        return "\n".join(session.scalars(select(JobEvent.message).where(
            JobEvent.job_id == job_id, JobEvent.message.like("re-queued%"))))


def _stored(bench: Bench, job_id: str) -> list[str]:
    store: S3BlobStore = bench.store  # type: ignore[assignment]
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"checkpoints/{job_id}/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_a_failed_checkpoint_upload_requeues_and_the_next_try_resumes_from_the_bucket(
        s3_bench: Bench, fault_proxy: FaultProxy) -> None:
    job_id = s3_bench.job()
    fault_proxy.rules.append(Rule(r"^PUT .*checkpoints/.*epoch-1\.pt", "503"))
    assert run(s3_bench, job_id) == "retried"
    job = s3_bench.read(job_id)
    assert job.status == "queued"
    assert "storage_unavailable: object store" in _requeued(s3_bench, job_id)
    assert f"uploading checkpoints/{job_id}/epoch-1.pt" in _requeued(s3_bench, job_id)
    assert epochs(s3_bench, job_id) == [(0, 0.5)]  # epoch 1 not recorded without its checkpoint
    assert _stored(s3_bench, job_id) == [f"checkpoints/{job_id}/epoch-0.pt"]

    fault_proxy.rules.clear()
    # Another machine: a fresh cache, so the checkpoint must come from the bucket.
    s3_bench.store = S3BlobStore(s3_bench.store.settings,  # type: ignore[attr-defined]
                                 Path(s3_bench.settings.data_dir) / "other-cache")
    with s3_bench.factory.begin() as session:
        session.get(type(job), job_id).status = "running"  # type: ignore[union-attr]
    assert run(s3_bench, job_id) == "succeeded"
    assert epochs(s3_bench, job_id) == [(0, 0.5), (1, 1.0)]
    with s3_bench.factory() as session:
        types = list(session.scalars(select(JobEvent.type).where(JobEvent.job_id == job_id)))
    assert types.count("resumed") == 1 and types.count("epoch") == 2
    assert any(line.startswith("GET ") and "epoch-0.pt" in line for line in fault_proxy.seen)
    assert _stored(s3_bench, job_id) == []  # the finished job's checkpoints are gone
    assert not list((Path(s3_bench.settings.data_dir) / "checkpoints").rglob("*.pt"))


def test_a_store_down_at_the_start_retries_the_job_and_loses_nothing(
        s3_bench: Bench, fault_proxy: FaultProxy) -> None:
    job_id = s3_bench.job()
    s3_bench.store = S3BlobStore(s3_bench.store.settings,  # type: ignore[attr-defined]
                                 Path(s3_bench.settings.data_dir) / "cold-cache")
    fault_proxy.down = True
    assert run(s3_bench, job_id) == "retried"
    job = s3_bench.read(job_id)
    assert job.status == "queued"
    assert "storage_unavailable: object store" in _requeued(s3_bench, job_id)
    assert epochs(s3_bench, job_id) == []
    fault_proxy.down = False
    with s3_bench.factory.begin() as session:
        session.get(type(job), job_id).status = "running"  # type: ignore[union-attr]
    assert run(s3_bench, job_id) == "succeeded"
    assert epochs(s3_bench, job_id) == [(0, 0.5), (1, 1.0)]
