"""Upload and download through the S3 object store on loopback: MB/s and the API process's peak
memory above idle (issue 23's target: under 200 MB, whatever the file's size).

Starts `python -m moto.server` (or uses ``--endpoint``, e.g. a local MinIO) and a
`greentrainer serve` process on that bucket (SQLite, one process), then:

- data set: a client's httpx streaming upload of a JSONL file (``POST /v1/files``: spooled to
  disk, validated by the bounded child, multipart-uploaded to the bucket), then its download
  (``GET /v1/files/{id}/content``, streamed from the bucket through the API). The API's resident
  memory is sampled every 10 ms (its peak: /proc VmHWM after a clear_refs reset), and the
  validation child's peak (VmHWM) with it;
- checkpoint: `put_at` (a streamed multipart upload) and `local_path` from a cold cache (a
  streamed, SHA-256-verified download) through the store interface, each in a fresh child
  process whose ru_maxrss above its idle level is the peak.

moto keeps objects in its own memory: that is moto's, not the API's, and is not counted.

    python3 benchmarks/object_store.py --dataset-mb 1000 --checkpoint-mb 500 \\
        --out benchmarks/results/object_store.md
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.object_store import S3BlobStore  # noqa: E402
from service.settings import StorageSettings  # noqa: E402

MB = 1024 * 1024
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
ROW_BYTES = 2048  # 1000 MB of rows stays under GREENTRAINER_MAX_DATASET_ROWS (1,000,000)


def _storage(endpoint: str) -> StorageSettings:
    return StorageSettings(backend="s3", endpoint_url=endpoint, bucket="bench",
                           access_key_id="test", secret_access_key="test")  # type: ignore[arg-type]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer at {url}")


# -- memory of another process -------------------------------------------------------------------
def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """The process's children, whichever of its threads started them."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


@contextmanager
def _peaks(pid: int) -> Iterator[dict[str, float]]:
    """The API's peak resident memory above its idle level, and its children's (the validator)
    peak, in MB, over the block."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    idle = _status_kb(pid, "VmRSS")
    result = {"idle_mb": idle / 1024, "api_mb": 0.0, "child_mb": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for child in _children(pid):
                result["child_mb"] = max(result["child_mb"], _status_kb(child, "VmHWM") / 1024)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        result["api_mb"] = (_status_kb(pid, "VmHWM") - idle) / 1024


# -- the data set through the API ----------------------------------------------------------------
def _dataset(path: Path, size_mb: int) -> int:
    """A valid JSONL data set of ``size_mb`` MB (rows of ROW_BYTES, unique to this run)."""
    token = os.urandom(8).hex()
    filler = "x" * (ROW_BYTES - 80)
    rows, written = 0, 0
    with open(path, "w") as out:
        while written < size_mb * MB:
            written += out.write(json.dumps({"source": f"{token} question {rows} {filler}",
                                             "target": f"answer {rows}"}) + "\n")
            rows += 1
    return rows


def _api_transfers(base: str, pid: int, source: Path) -> list[str]:
    size = source.stat().st_size
    with httpx.Client(base_url=base, timeout=1800) as client:
        r = client.post("/teams", json={"name": "bench"},
                        headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        r.raise_for_status()
        team = {"Authorization": f"Bearer {r.json()['api_key']['key']}"}
        warm = b'{"source": "a", "target": "b"}\n'
        r = client.post("/v1/files", files={"file": ("warm.jsonl", warm)},
                        data={"purpose": "fine-tune"}, headers=team)
        r.raise_for_status()
        client.get(f"/v1/files/{r.json()['id']}/content", headers=team).raise_for_status()
        with open(source, "rb") as handle, _peaks(pid) as up:
            started = time.perf_counter()
            r = client.post("/v1/files", files={"file": ("train.jsonl", handle)},
                            data={"purpose": "fine-tune"}, headers=team)
            up_s = time.perf_counter() - started
        if r.status_code != 200:
            raise RuntimeError(f"upload answered {r.status_code}: {r.text[:500]}")
        digest = hashlib.sha256()
        with _peaks(pid) as down:
            started = time.perf_counter()
            with client.stream("GET", f"/v1/files/{r.json()['id']}/content",
                               headers=team) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(MB):
                    digest.update(chunk)
            down_s = time.perf_counter() - started
    with open(source, "rb") as handle:
        if hashlib.file_digest(handle, "sha256").hexdigest() != digest.hexdigest():
            raise RuntimeError("the downloaded data set differs from the uploaded one")
    print(f"API idle RSS {up['idle_mb']:.0f} MB; validation child peak {up['child_mb']:.0f} MB",
          flush=True)
    return [f"| data set (JSONL), through the API | {size / MB:.0f} | {size / MB / up_s:.1f} | "
            f"{up['api_mb']:.0f} | {size / MB / down_s:.1f} | {down['api_mb']:.0f} | "
            f"{up['child_mb']:.0f} |"]


# -- the checkpoint through the store interface --------------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _transfer(what: str, endpoint: str, path: str, cache: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    s3 = S3BlobStore(_storage(endpoint), Path(cache))
    s3.exists("warm-up")  # the client and the bucket: part of idle, not of the transfer
    idle = _rss_mb()
    started = time.perf_counter()
    key = "checkpoints/bench/epoch-0.pt"
    size = s3.put_at(key, Path(path)) if what == "upload" else s3.local_path(key).stat().st_size
    out.put((size, time.perf_counter() - started, _rss_mb() - idle))


def _in_child(what: str, endpoint: str, path: str, cache: str) -> tuple[int, float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_transfer, args=(what, endpoint, path, cache, queue))
    child.start()
    result = queue.get()
    child.join()
    return result  # type: ignore[no-any-return]


def _checkpoint(endpoint: str, tmp: Path, size_mb: int) -> str:
    source = tmp / "epoch-0.pt"
    with open(source, "wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(MB))
    size, up_s, up_mb = _in_child("upload", endpoint, str(source), str(tmp / "cache-up"))
    _, down_s, down_mb = _in_child("download", endpoint, "", str(tmp / "cache-down"))
    shutil.rmtree(tmp / "cache-down", ignore_errors=True)
    return (f"| checkpoint (random bytes), store interface | {size / MB:.0f} | {size / MB / up_s:.1f} "
            f"| {up_mb:.0f} | {size / MB / down_s:.1f} | {down_mb:.0f} | - |")


def _serve(tmp: Path, endpoint: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    (tmp / "spool").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp / "spool"),
           "GREENTRAINER_DATA_DIR": str(tmp / "data"), "GREENTRAINER_ADMIN_KEY": ADMIN_KEY,
           "GREENTRAINER_STORAGE__BACKEND": "s3", "GREENTRAINER_STORAGE__ENDPOINT_URL": endpoint,
           "GREENTRAINER_STORAGE__BUCKET": "bench", "GREENTRAINER_STORAGE__ACCESS_KEY_ID": "test",
           "GREENTRAINER_STORAGE__SECRET_ACCESS_KEY": "test", "GREENTRAINER_LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "greentrainer"]
    subprocess.run([*command, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 (open while the server runs)
    server = subprocess.Popen([*command, "serve", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    _wait(base + "/healthz", server, "greentrainer serve")
    return server, base


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               "unknown CPU")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({cpu}), load average {load} at the start"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset-mb", type=int, default=1000)
    parser.add_argument("--checkpoint-mb", type=int, default=500)
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of a moto server")
    parser.add_argument("--out", type=Path, help="append a dated section to this file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gt-object-store-"))
    # The data set, Starlette's spool of it and ours; the checkpoint and its downloaded copy.
    needed = (3 * args.dataset_mb + 2 * args.checkpoint_mb) * MB
    if shutil.disk_usage(tmp).free < needed + 1024 * MB:
        raise SystemExit(f"{tmp}: needs {needed // MB + 1024} MB free")
    machine = _machine()
    processes: list[subprocess.Popen[bytes]] = []
    steps: list[str] = []
    lines = ["| object | size (MB) | upload MB/s | upload peak above idle (MB) | download MB/s | "
             "download peak above idle (MB) | validation child peak (MB) |",
             "|---|---|---|---|---|---|---|"]
    try:
        endpoint = args.endpoint
        if endpoint is None:
            port = _free_port()
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            endpoint = f"http://127.0.0.1:{port}"
            _wait(endpoint, processes[-1], "moto server")
        server, base = _serve(tmp, endpoint)
        processes.append(server)
        source = tmp / "train.jsonl"
        rows = _dataset(source, args.dataset_mb)
        print(f"data set: {rows} rows", flush=True)
        lines += _api_transfers(base, server.pid, source)
        print(lines[-1], flush=True)
        steps = [json.loads(line)["msg"] for line in (tmp / "serve.log").read_text().splitlines()
                 if "data set upload of" in line]
        print(steps[-1] if steps else "no upload steps logged", flush=True)
        source.unlink()
        lines.append(_checkpoint(endpoint, tmp, args.checkpoint_mb))
        print(lines[-1], flush=True)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        with open(args.out, "a") as out:
            out.write(f"\n## {day}: through the API ({machine})\n\n"
                      f"`{' '.join(sys.argv)}`\n\n{table}\n\nThe API's log of the "
                      f"upload's steps: `{steps[-1] if steps else 'none'}`\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
