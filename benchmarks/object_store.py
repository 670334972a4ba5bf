"""Upload and download through the S3 blob store on loopback: MB/s and the process's peak
memory above idle (the target: under 200 MB, whatever the file's size).

Starts `python -m moto.server` (or uses ``--endpoint``, e.g. a local MinIO), writes a data set
and a checkpoint of the given sizes, and for each: `put_file` (a streamed multipart upload),
then `local_path` from a cold cache (a streamed, SHA-256-verified download). Peak memory is the
process's ru_maxrss, read in a fresh child process per transfer so that one does not hide the
next.

    python3 benchmarks/object_store.py --dataset-mb 1024 --checkpoint-mb 500 \\
        --out benchmarks/results/object_store.md
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.object_store import S3BlobStore  # noqa: E402
from service.settings import StorageSettings  # noqa: E402

MB = 1024 * 1024


def _settings(endpoint: str) -> StorageSettings:
    return StorageSettings(backend="s3", endpoint_url=endpoint, bucket="bench",
                           access_key_id="test", secret_access_key="test")  # type: ignore[arg-type]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _transfer(what: str, endpoint: str, path: str, cache: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = _settings(endpoint)
    s3 = S3BlobStore(store, Path(cache))
    s3.exists("warm-up")  # the client and the bucket: part of idle, not of the transfer
    idle = _rss_mb()
    started = time.perf_counter()
    if what == "upload":
        key, _, size = s3.put_file("bench", Path(path))
    else:
        key = path
        size = s3.local_path(key).stat().st_size
    seconds = time.perf_counter() - started
    out.put((key, size, seconds, _rss_mb() - idle))


def _run(what: str, endpoint: str, path: str, cache: str) -> tuple[str, int, float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_transfer, args=(what, endpoint, path, cache, queue))
    child.start()
    result = queue.get()
    child.join()
    return result  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset-mb", type=int, default=1024)
    parser.add_argument("--checkpoint-mb", type=int, default=500)
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of a moto server")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    server = None
    endpoint = args.endpoint
    if endpoint is None:
        port = 45000 + os.getpid() % 1000
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        time.sleep(3)
    lines = ["| object | size (MB) | upload MB/s | upload peak above idle (MB) | "
             "download MB/s | download peak above idle (MB) |", "|---|---|---|---|---|---|"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, size_mb in (("data set", args.dataset_mb), ("checkpoint", args.checkpoint_mb)):
                source = Path(tmp) / f"{name.replace(' ', '_')}.bin"
                with open(source, "wb") as out:
                    for _ in range(size_mb):
                        out.write(os.urandom(MB))
                key, size, up_s, up_mb = _run("upload", endpoint, str(source), tmp + "/c0")
                source.unlink()
                _, _, down_s, down_mb = _run("download", endpoint, key, tmp + f"/c-{name}")
                lines.append(f"| {name} | {size / MB:.0f} | {size / MB / up_s:.0f} | {up_mb:.0f} | "
                             f"{size / MB / down_s:.0f} | {down_mb:.0f} |")
                print(lines[-1], flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(f"# Object store on loopback\n\n`{' '.join(sys.argv)}`\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
