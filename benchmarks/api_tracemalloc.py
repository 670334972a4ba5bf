"""Where the API's memory goes over a long read/submit mix: a tracemalloc diff.

Runs the API in this process (uvicorn in a thread) on a fresh Postgres database, warms it up
with 3,000 requests of the soak's mix (job lists, overview stats, a job, its events, its epochs,
and a submission every 10th), then takes tracemalloc snapshots around N more requests and prints
the net Python-heap growth and its largest sources. `soak.py` measures RSS over time; this says
whether a slow RSS creep is Python objects that something keeps, or not.

    python3 benchmarks/api_tracemalloc.py --requests 6000
"""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load_client import BODY  # noqa: E402  (benchmarks/ is not a package)
from load_jobs import create_database, drop_database, free_port, setup_team  # noqa: E402


def _mix(base: str, headers: dict[str, str], dataset: str, jobs: list[str], n: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(n):
            job = jobs[i % len(jobs)]
            path = ["/jobs?limit=50", "/stats/overview", f"/jobs/{job}", f"/jobs/{job}/events",
                    f"/jobs/{job}/epochs"][i % 5]
            client.get(path, headers=headers).raise_for_status()
            if i % 10 == 0:
                client.post("/jobs", json={**BODY, "training_dataset": dataset},
                            headers=headers).raise_for_status()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000, help="requests between the snapshots")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    name, url = create_database()
    admin = "gt_bench_" + secrets.token_hex(16)
    os.environ.update(GREENTRAINER_DATABASE_URL=url, GREENTRAINER_ADMIN_KEY=admin,
                      GREENTRAINER_DATA_DIR=f"/tmp/{name}", GREENTRAINER_LOG_LEVEL="WARNING")
    from service.app import create_app
    from service.db import upgrade

    upgrade(url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port,
                                           log_config=None, access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        while not server.started:
            time.sleep(0.1)
        _, headers, dataset = setup_team(base, admin)
        jobs = [httpx.post(f"{base}/jobs", json={**BODY, "training_dataset": dataset},
                           headers=headers).json()["id"] for _ in range(30)]
        _mix(base, headers, dataset, jobs, 3000)
        tracemalloc.start(10)
        gc.collect()
        before = tracemalloc.take_snapshot()
        _mix(base, headers, dataset, jobs, args.requests)
        gc.collect()
        diffs = tracemalloc.take_snapshot().compare_to(before, "traceback")
        net = sum(d.size_diff for d in diffs) / 1024
        print(f"{args.requests} requests after a 3,000-request warm-up: Python heap {net:+.1f} KiB net")
        for stat in diffs[: args.top]:
            print(f"{stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks, allocated at")
            print("    " + "\n    ".join(stat.traceback.format()[-4:]))
    finally:
        server.should_exit = True
        time.sleep(1)
        drop_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
