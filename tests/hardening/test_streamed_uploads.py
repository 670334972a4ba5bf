"""Fault class: an upload read into the API's memory whole (``read_limited``): a 1 GB data set
cost the API 1 GB, twice (the bytes, then the child's stdin). Uploads now stream through disk:
spooled in chunks (the limit enforced while copying, the spool removed on every path), validated
by the child from that file a line at a time, moved into the store (S3: a multipart upload)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import boto3

from tests.hardening.conftest import live_api
from tests.hardening.test_upload_bombs import rss_peak
from tests.s3 import MotoServer, moto_server, storage_settings  # noqa: F401 (fixture)

MIB = 1 << 20


def _jsonl(path: Path, size_bytes: int) -> Path:
    """A valid JSONL data set of about ``size_bytes`` (rows of about 1 KiB)."""
    with open(path, "w") as out:
        written, index = 0, 0
        while written < size_bytes:
            line = json.dumps({"source": f"question {index} " + "x" * 1000,
                               "target": f"answer {index}"}) + "\n"
            written += out.write(line)
            index += 1
    return path


def _open_deleted_files() -> set[str]:
    """This process's open file descriptors on files that were deleted (an anonymous spool
    still holding its disk space), or that lie under an uploads directory."""
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith("(deleted)") or "/uploads/" in target:
            held.add(f"{fd} -> {target}")
    return held


def test_a_file_over_the_limit_is_413_naming_it_and_leaves_no_spool(tmp_path: Path) -> None:
    limit = 256 * 1024
    data = _jsonl(tmp_path / "big.jsonl", limit + 4096).read_bytes()
    with live_api(tmp_path / "api", max_upload_bytes=limit) as api:
        team = api.new_team()
        before = _open_deleted_files()
        # Within the body limit (the file plus 64 KiB of framing): refused while spooling.
        r = api.client.post("/datasets", files={"file": ("big.jsonl", data)}, headers=team)
        assert r.status_code == 413, r.text[:300]
        assert f"upload limit of {limit} bytes" in r.json()["error"]["message"]
        assert "GREENTRAINER_MAX_UPLOAD_BYTES" in r.json()["error"]["message"]

        # A chunked body (no Content-Length) past the body limit: refused mid-stream.
        def chunks() -> Iterator[bytes]:
            boundary = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\""
            yield boundary + b"\r\n\r\n"
            for _ in range(8):
                yield data[:64 * 1024]
            yield b"\r\n--b--\r\n"
        r = api.client.post("/v1/files", content=chunks(), headers={
            **team, "Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413, r.text[:300]
        spool = Path(api.settings.data_dir) / "uploads"
        assert not spool.exists() or list(spool.iterdir()) == []
        assert _open_deleted_files() - before == set()


def test_the_apis_memory_does_not_grow_by_the_uploads_size(tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "train.jsonl", 48 * MIB)
    with live_api(tmp_path / "api", max_upload_bytes=64 * MIB) as api:
        team = api.new_team()
        api.upload(team)  # the first upload's imports and pools are idle, not the upload's
        with open(source, "rb") as handle, rss_peak() as grown:
            r = api.client.post("/datasets", files={"file": ("train.jsonl", handle)},
                                headers=team, timeout=120)
        assert r.status_code == 201, r.text[:300]
        assert grown[0] < 12 * MIB, f"the API grew by {grown[0] / MIB:.0f} MiB for 48 MiB"
        assert r.json()["size_bytes"] == source.stat().st_size
        spool = Path(api.settings.data_dir) / "uploads"
        assert list(spool.iterdir()) == []  # moved into the store


def test_a_spool_left_by_a_killed_process_is_removed_by_the_next_upload(tmp_path: Path) -> None:
    with live_api(tmp_path / "api") as api:
        spool = Path(api.settings.data_dir) / "uploads"
        spool.mkdir(parents=True)
        stale, fresh = spool / ".upload-stale", spool / ".upload-in-flight"
        for path in (stale, fresh):
            path.write_bytes(b"x" * 1024)
        day_ago = time.time() - 25 * 3600
        os.utime(stale, (day_ago, day_ago))
        api.upload(api.new_team())
        assert sorted(spool.iterdir()) == [fresh]  # another process's upload is left alone


def test_an_upload_to_s3_goes_up_in_parts_and_streams_back(
        moto_server: MotoServer, tmp_path: Path) -> None:  # noqa: F811 (fixture)
    source = _jsonl(tmp_path / "train.jsonl", 12 * MIB)
    storage = storage_settings(moto_server.url, part_size_mib=5)
    with live_api(tmp_path / "api", max_upload_bytes=64 * MIB, storage=storage) as api:
        team = api.new_team()
        with open(source, "rb") as handle:
            r = api.client.post("/v1/files", files={"file": ("train.jsonl", handle)},
                                data={"purpose": "fine-tune"}, headers=team, timeout=120)
        assert r.status_code == 200, r.text[:300]
        file_id = r.json()["id"]
        s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
        listed = s3.list_objects_v2(Bucket=storage.bucket, Prefix="datasets/")["Contents"]
        assert len(listed) == 1 and listed[0]["Size"] == source.stat().st_size
        # An S3 multipart ETag ends in -<number of parts>: three of 5 MiB at most.
        assert listed[0]["ETag"].strip('"').endswith("-3")
        with api.client.stream("GET", f"/v1/files/{file_id}/content", headers=team) as down:
            assert down.status_code == 200
            assert down.headers["content-length"] == str(source.stat().st_size)
            received = b"".join(down.iter_bytes())
        assert received == source.read_bytes()
        cache = Path(api.settings.data_dir) / "cache"
        assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*")), \
            "the download went through the API machine's disk cache"

