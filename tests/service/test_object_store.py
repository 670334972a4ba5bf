"""The S3 blob store against a real S3-protocol server (moto, its own process), through a proxy
that injects faults: multipart uploads streamed from files, downloads verified against the
SHA-256 written with them, a down server / 5xx / stalled read retried or failed clearly."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import boto3
import httpx
import pytest

from service.errors import ChecksumMismatch, StorageUnavailable
from service.object_store import S3BlobStore
from service.storage import LocalBlobStore
from tests.s3 import (  # noqa: F401 (fixtures)
    FaultProxy,
    MotoServer,
    Rule,
    fault_proxy,
    moto_server,
    storage_settings,
)


def _file(path: Path, size: int, seed: int = 0) -> Path:
    block = hashlib.sha256(str(seed).encode()).digest() * 32768  # 1 MiB of a repeating pattern
    with open(path, "wb") as out:
        written = 0
        while written < size:
            part = block[: min(len(block), size - written)]
            out.write(part)
            written += len(part)
    return path


def _store(url: str, tmp_path: Path, **values: object) -> S3BlobStore:
    return S3BlobStore(storage_settings(url, **values), tmp_path / "cache")


def _raw(store: S3BlobStore) -> object:
    return boto3.client("s3", endpoint_url=store.settings.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def test_a_large_file_goes_up_in_parts_and_comes_back_verified(
        moto_server: MotoServer, tmp_path: Path) -> None:
    store = _store(moto_server.url, tmp_path)
    source = _file(tmp_path / "big.bin", 12 * 1024 * 1024 + 17)
    key, digest, size = store.put_file("artifacts/job_1", source, suffix=".bin")
    assert key == f"artifacts/job_1/{digest}.bin" and size == source.stat().st_size
    head = _raw(store).head_object(Bucket=store.bucket, Key=key)  # type: ignore[attr-defined]
    assert head["ETag"].strip('"').endswith("-3")  # three parts of 5 MiB at most
    assert head["Metadata"]["sha256"] == digest
    local = store.local_path(key)
    assert local.is_relative_to(tmp_path / "cache")
    assert hashlib.sha256(local.read_bytes()).hexdigest() == digest
    assert b"".join(store.iter_bytes(key)) == source.read_bytes()


def test_bytes_that_do_not_match_their_checksum_are_refused_and_not_cached(
        moto_server: MotoServer, tmp_path: Path) -> None:
    store = _store(moto_server.url, tmp_path)
    key, digest = store.put("datasets", b'{"source": "a", "target": "b"}\n', suffix=".jsonl")
    _raw(store).put_object(Bucket=store.bucket, Key=key, Body=b"tampered",  # type: ignore[attr-defined]
                           Metadata={"sha256": digest})
    with pytest.raises(ChecksumMismatch, match=f"expected {digest}"):
        store.local_path(key)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_a_server_that_is_down_fails_the_step_naming_the_store(tmp_path: Path) -> None:
    from tests.s3 import free_port

    store = _store(f"http://127.0.0.1:{free_port()}", tmp_path, max_attempts=2)
    with pytest.raises(StorageUnavailable, match=r"object store http://127\.0\.0\.1:\d+ bucket"):
        store.put("datasets", b"x")


def test_5xx_answers_are_retried_and_a_lasting_one_fails_clearly(
        fault_proxy: FaultProxy, tmp_path: Path) -> None:
    store = _store(fault_proxy.url, tmp_path, max_attempts=3)
    source = _file(tmp_path / "f.bin", 6 * 1024 * 1024)
    fault_proxy.rules.append(Rule(r"^PUT .*partNumber=2", "503", times=2))
    key, digest, _ = store.put_file("artifacts/job_2", source)
    assert hashlib.sha256(store.local_path(key).read_bytes()).hexdigest() == digest
    assert sum("partNumber=2" in line for line in fault_proxy.seen) == 3

    fault_proxy.rules.append(Rule(r"^PUT ", "503"))
    with pytest.raises(StorageUnavailable, match="uploading checkpoints/job_2/epoch-0.pt"):
        store.put_at("checkpoints/job_2/epoch-0.pt", _file(tmp_path / "c.pt", 1000))
    assert (tmp_path / "c.pt").exists()  # nothing is lost: the file stays for another try
    assert not store.exists("checkpoints/job_2/epoch-0.pt")


def test_a_stalled_read_resumes_where_it_stopped(fault_proxy: FaultProxy, tmp_path: Path) -> None:
    store = _store(fault_proxy.url, tmp_path, read_timeout_s=1.0)
    source = _file(tmp_path / "f.bin", 3 * 1024 * 1024 + 5, seed=3)
    key, digest, _ = store.put_file("datasets", source)
    fault_proxy.rules.append(Rule(r"^GET .*datasets", "stall", times=1, stall_s=3.0))
    started = time.monotonic()
    assert hashlib.sha256(store.local_path(key).read_bytes()).hexdigest() == digest
    assert time.monotonic() - started < 10
    ranged = [line for line in fault_proxy.seen if line.startswith("GET ") and "datasets" in line]
    assert len(ranged) == 2  # the stalled GET, then one ranged GET from where it stopped


def test_presigned_urls_download_the_object(moto_server: MotoServer, tmp_path: Path) -> None:
    store = _store(moto_server.url, tmp_path, presign_expiry_s=60)
    key, _, _ = store.put_file("artifacts/job_3", _file(tmp_path / "m.json", 2048))
    url = store.download_url(key, "metrics.json")
    assert url is not None and "X-Amz-Signature" in url
    assert "response-content-disposition=attachment%3B%20filename%3D%22metrics.json" in url
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == (tmp_path / "m.json").read_bytes()


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_checkpoints_move_in_and_a_jobs_prefix_is_deleted_with_its_cached_copies(
        moto_server: MotoServer, tmp_path: Path, backend: str) -> None:
    store = (_store(moto_server.url, tmp_path) if backend == "s3"
             else LocalBlobStore(tmp_path / "blobs"))
    for epoch in (0, 1):
        written = _file(tmp_path / f"e{epoch}.pt", 4096, seed=epoch)
        assert store.put_at(f"checkpoints/job_4/epoch-{epoch}.pt", written) == 4096
        assert not written.exists()
    store.put("datasets", b"kept")
    assert store.local_path("checkpoints/job_4/epoch-1.pt").read_bytes() == \
        _file(tmp_path / "again.pt", 4096, seed=1).read_bytes()
    assert store.delete_prefix("checkpoints/job_4/") == 2
    assert not store.exists("checkpoints/job_4/epoch-0.pt")
    assert not (tmp_path / "cache" / "checkpoints" / "job_4").exists()
    assert store.exists(f"datasets/{hashlib.sha256(b'kept').hexdigest()}")


def test_keys_that_escape_the_store_are_refused(moto_server: MotoServer, tmp_path: Path) -> None:
    for store in (_store(moto_server.url, tmp_path), LocalBlobStore(tmp_path / "blobs")):
        for key in ("../x", "/etc/passwd", "a/../../b"):
            with pytest.raises(ValueError, match="escapes the storage root"):
                store.local_path(key)
