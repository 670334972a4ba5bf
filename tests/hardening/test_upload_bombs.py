"""Fault class: limits checked on the compressed size only. A 10 KB Parquet file that decodes to
300 MiB was accepted, and the API's memory stayed 600 MB higher (`pq.read_table` read it all).
Rows, cell size and decoded bytes are now bounded while the file is read, and the reading
happens in a child process with a memory limit: the API's own memory does not move."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.hardening.conftest import live_api

MIB = 1 << 20


def _parquet_bomb(path: Path, rows: int, cell_bytes: int) -> bytes:
    """A Parquet file of ``rows`` rows whose source is ``cell_bytes`` of one repeated letter,
    written in a child process (building it here would spend the memory this test watches)."""
    script = (
        "import sys, pyarrow as pa, pyarrow.parquet as pq\n"
        "rows, cell, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
        "batch = min(rows, max(1, (16 << 20) // cell))\n"
        "schema = pa.schema([('source', pa.string()), ('target', pa.string())])\n"
        "with pq.ParquetWriter(path, schema, compression='zstd') as w:\n"
        "    done = 0\n"
        "    while done < rows:\n"
        "        n = min(batch, rows - done)\n"
        "        w.write_table(pa.table({'source': ['a' * cell] * n, 'target': ['b'] * n},\n"
        "                               schema=schema), row_group_size=n)\n"
        "        done += n\n")
    subprocess.run([sys.executable, "-c", script, str(rows), str(cell_bytes), str(path)],
                   check=True)
    return path.read_bytes()


@contextmanager
def rss_peak() -> Iterator[list[int]]:
    """The highest resident set of this process (the API's) while the block runs, in bytes."""
    peak = [0]
    stop = threading.Event()

    def rss() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    base = rss()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()
        peak[0] -= base


@pytest.mark.parametrize(("rows", "cell", "decoded_limit", "status", "problem"), [
    (1, 300 * MIB, 1024 * MIB, 422, "longer than 1048576 bytes"),  # one 300 MiB cell
    (300_000, 1024, 64 * MIB, 413, "decodes to more than"),        # 300 MiB in small cells
])
def test_a_parquet_bomb_is_refused_without_the_api_decoding_it(
        tmp_path: Path, rows: int, cell: int, decoded_limit: int, status: int,
        problem: str) -> None:
    data = _parquet_bomb(tmp_path / "bomb.parquet", rows, cell)
    assert len(data) < 2 * MIB
    with live_api(tmp_path / "api", max_upload_bytes=4 * MIB,
                  max_decoded_bytes=decoded_limit) as api, rss_peak() as grown:
        r = api.client.post("/datasets", files={"file": ("bomb.parquet", data)},
                            headers=api.new_team())
    assert r.status_code == status, r.text[:300]
    assert problem in r.json()["error"]["message"]
    assert grown[0] < 100 * MIB, f"the API grew by {grown[0] / MIB:.0f} MiB"


def test_a_file_larger_decoded_than_the_validators_memory_streams_through_it(
        tmp_path: Path) -> None:
    # 300 MiB of 64 KiB cells through a 768 MiB child (Python and pyarrow take 300 of it): read
    # whole (the table, then its Python strings), it could not be validated
    data = _parquet_bomb(tmp_path / "bomb.parquet", 4800, 64 * 1024)
    with live_api(tmp_path / "api", max_upload_bytes=4 * MIB, max_decoded_bytes=1024 * MIB,
                  upload_validation_memory_mb=768) as api, rss_peak() as grown:
        r = api.client.post("/datasets", files={"file": ("bomb.parquet", data)},
                            headers=api.new_team())
    assert r.status_code == 201, r.text[:300]
    assert r.json()["row_count"] == 4800
    assert grown[0] < 100 * MIB, f"the API grew by {grown[0] / MIB:.0f} MiB"


def test_rows_past_the_limit_are_refused_from_the_parquet_metadata(tmp_path: Path) -> None:
    data = _parquet_bomb(tmp_path / "rows.parquet", 5000, 8)
    with live_api(tmp_path / "api", max_dataset_rows=1000) as api:
        r = api.client.post("/datasets", files={"file": ("rows.parquet", data)},
                            headers=api.new_team())
    assert r.status_code == 422, r.text[:300]
    assert "more than 1000 rows" in r.json()["error"]["message"]


@pytest.mark.parametrize(("name", "data"), [
    ("long.jsonl", b'{"source": "' + b"x" * 5000 + b'", "target": "b"}\n'),
    ("long.csv", b"source,target\n" + b"x" * 5000 + b",b\n"),
])
def test_a_cell_over_the_limit_is_422_naming_the_line(tmp_path: Path, name: str,
                                                      data: bytes) -> None:
    with live_api(tmp_path, max_cell_bytes=4096) as api:
        r = api.client.post("/datasets", files={"file": (name, data)}, headers=api.new_team())
    assert r.status_code == 422, r.text[:300]
    assert "line 2" in r.json()["error"]["message"] or "line 1" in r.json()["error"]["message"]
