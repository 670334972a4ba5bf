"""Soak: memory of the API and worker processes over a long run with a steady job stream.

Starts, as separate processes, `greentrainer serve` (one uvicorn process), `greentrainer
worker` and `greentrainer scheduler --dispatch` on a fresh Postgres database and a private
Redis, with the tiny random-init Llama model. For --minutes it submits a small 1-epoch job
every --job-interval seconds (from 4 teams in turn) and reads the API (job lists, a job, its
events and epochs) at --reads-per-second. Every --sample seconds it records the resident memory
(VmRSS) of the API and worker processes. It prints one row per sample period and the growth
between the end of the first quarter (warm: caches, model code loaded) and the end.

    python3 benchmarks/soak.py --minutes 30
    python3 benchmarks/soak.py --minutes 5 --sample 15     # a short run
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load_jobs import create_database, drop_database, free_port, start_server  # noqa: E402

from tests.e2e.conftest import write_tiny_model  # noqa: E402
from tests.hardening.private_services import PrivateRedis  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _succeeded(database_url: str) -> int:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE status = 'succeeded'").fetchone()
    return int(row[0]) if row else 0


def _reader(base_url: str, teams: list[dict[str, str]], job_ids: list[str], rate: float,
            stop: threading.Event, counts: dict[str, int]) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            team = teams[i % len(teams)]
            paths = ["/jobs?limit=50", "/stats/overview"]
            if job_ids:
                job = job_ids[-1 - (i % min(len(job_ids), 20))]
                paths += [f"/jobs/{job}", f"/jobs/{job}/events", f"/jobs/{job}/epochs"]
            r = client.get(paths[i % len(paths)], headers=team)
            counts["reads"] += 1
            counts["read_errors"] += int(r.status_code >= 500)
            i += 1
            stop.wait(1 / rate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--sample", type=float, default=60, help="seconds between samples")
    parser.add_argument("--job-interval", type=float, default=10)
    parser.add_argument("--reads-per-second", type=float, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gt-soak-"))
    model_dir = write_tiny_model(root / "models" / "tiny")
    redis = PrivateRedis()
    redis.start()
    name, database_url = create_database()
    admin_key = "gt_soak_" + secrets.token_hex(16)
    os.environ.update({"GREENTRAINER_BROKER_URL": redis.url, "HF_HUB_OFFLINE": "1",
                       "GREENTRAINER_CARBON_PROVIDERS": "static",
                       "GREENTRAINER_ALLOWED_MODEL_DIRS": str(root / "models"),
                       "GREENTRAINER_DISPATCH_INTERVAL_SECONDS": "1"})
    port = free_port()
    api = start_server(database_url, admin_key, port, root / "data", 1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "GREENTRAINER_DATABASE_URL": database_url,
           "GREENTRAINER_DATA_DIR": str(root / "data"), "GREENTRAINER_LOG_LEVEL": "WARNING"}
    log = open(root / "procs.log", "wb")  # noqa: SIM115 (closed at the end)
    worker = subprocess.Popen([sys.executable, "-m", "greentrainer.cli", "worker",
                               "--gpu-class", "soak", "--loglevel", "WARNING"], env=env,
                              cwd=ROOT, stdout=log, stderr=log)
    loop = subprocess.Popen([sys.executable, "-m", "greentrainer.cli", "scheduler",
                             "--dispatch"], env=env, cwd=ROOT, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {admin_key}"}
    stop = threading.Event()
    counts = {"reads": 0, "read_errors": 0}
    samples: list[tuple[float, float, float, int, int]] = []
    job_ids: list[str] = []
    try:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            teams, datasets = [], []
            for i in range(4):
                body = client.post("/teams", json={"name": f"soak-{i}"}, headers=admin).json()
                team = {"Authorization": f"Bearer {body['api_key']['key']}"}
                rows = "\n".join(f'{{"source": "soak {i} row {n}", "target": "ok {n}"}}'
                                 for n in range(8))
                datasets.append(client.post("/datasets", files={"file": ("s.jsonl",
                                rows.encode())}, headers=team).json()["id"])
                teams.append(team)
            reader = threading.Thread(target=_reader, args=(base_url, teams, job_ids,
                                                            args.reads_per_second, stop, counts),
                                      daemon=True)
            reader.start()
            begin = time.monotonic()
            next_job = next_sample = begin
            while (now := time.monotonic()) < begin + args.minutes * 60:
                if now >= next_job:
                    i = len(job_ids) % len(teams)
                    r = client.post("/jobs", json={
                        "model": str(model_dir), "gpu_class": "soak",
                        "training_dataset": datasets[i],
                        "hyperparameters": {"epochs": 1, "batch_size": 4, "max_length": 64},
                        "rho_policy": {"type": "fixed", "rho": 0.7}}, headers=teams[i])
                    if r.status_code == 201:
                        job_ids.append(r.json()["id"])
                    next_job += args.job_interval
                if now >= next_sample:
                    succeeded = _succeeded(database_url)
                    samples.append(((now - begin) / 60, rss_mib(api.pid), rss_mib(worker.pid),
                                    len(job_ids), succeeded))
                    print(f"{samples[-1][0]:6.1f} min  API {samples[-1][1]:7.1f} MiB  worker "
                          f"{samples[-1][2]:7.1f} MiB  jobs {len(job_ids)}  succeeded "
                          f"{succeeded}", file=sys.stderr, flush=True)
                    next_sample += args.sample
                if worker.poll() is not None or api.poll() is not None:
                    raise RuntimeError("the API or the worker exited; see " + str(root))
                time.sleep(0.2)
    finally:
        stop.set()
        for process in (loop, worker, api):
            process.terminate()
        for process in (loop, worker, api):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        redis.kill()
        drop_database(name)
    print(f"Soak {args.minutes:.0f} min: a 1-epoch tiny-model job every {args.job_interval:.0f} s, "
          f"{args.reads_per_second:.0f} API reads/s ({counts['reads']} reads, "
          f"{counts['read_errors']} 5xx); {os.cpu_count()} CPUs shared (1-min load "
          f"{os.getloadavg()[0]:.1f})\n")
    print("| minute | API RSS MiB | worker RSS MiB | jobs submitted | succeeded |\n"
          "|---:|---:|---:|---:|---:|")
    for minute, api_mib, worker_mib, submitted, succeeded in samples:
        print(f"| {minute:.1f} | {api_mib:.1f} | {worker_mib:.1f} | {submitted} | {succeeded} |")
    warm = samples[max(0, len(samples) // 4)]
    last = samples[-1]
    print(f"\nGrowth from minute {warm[0]:.1f} to {last[0]:.1f}: API {last[1] - warm[1]:+.1f} MiB, "
          f"worker {last[2] - warm[2]:+.1f} MiB")
    return 0 if counts["read_errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
