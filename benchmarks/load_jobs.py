"""Load test of the jobs API: POST /jobs followed by GET /jobs/{id}, open loop, on loopback.

Starts `greentrainer serve --workers N` on a fresh Postgres database, creates a team
and a data set, then for each target rate sends requests at that rate for --seconds: every
iteration is a POST /jobs with its own Idempotency-Key (a share of them sent twice, like a
client retrying after a timeout) and a GET of the job it got back. Requests are launched on a
fixed schedule whatever the server's speed (open loop), and a POST's latency is measured from
its scheduled send time, so a slow server cannot hide its queueing (a GET is sent as soon as
its POST answered and is timed from then).

At the end it checks in the database that every accepted job is recorded exactly once.

    python3 benchmarks/load_jobs.py --rates 100,200,300 --seconds 20 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Run:
    rate: float
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> job id
    retried: int = 0
    wall_seconds: float = 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def iteration(client: httpx.AsyncClient, run: Run, body: dict[str, object],
                    headers: dict[str, str], retry: bool, due: float) -> None:
    key = secrets.token_hex(12)
    job_id = None
    for attempt in range(2 if retry else 1):
        start = due if attempt == 0 else time.perf_counter()
        run.sent += 1
        try:
            r = await client.post("/jobs", json=body, headers={**headers, "Idempotency-Key": key})
        except httpx.HTTPError as exc:
            run.errors.append(f"POST {type(exc).__name__}")
            return
        run.post_ms.append((time.perf_counter() - start) * 1000)
        if r.status_code not in (200, 201):
            run.errors.append(f"POST {r.status_code} {r.text[:100]}")
            return
        if job_id is not None and r.json()["id"] != job_id:
            run.errors.append("retry returned a different job")
        job_id = r.json()["id"]
    run.retried += int(retry)
    run.accepted[key] = str(job_id)
    start = time.perf_counter()
    run.sent += 1
    try:
        r = await client.get(f"/jobs/{job_id}", headers=headers)
    except httpx.HTTPError as exc:
        run.errors.append(f"GET {type(exc).__name__}")
        return
    run.get_ms.append((time.perf_counter() - start) * 1000)
    if r.status_code != 200 or r.json()["id"] != job_id:
        run.errors.append(f"GET {r.status_code}")


async def load(base_url: str, headers: dict[str, str], dataset: str, rate: float,
               seconds: float, retry_share: float) -> Run:
    """``rate`` is requests per second (POST + GET), so iterations start at rate / 2."""
    run = Run(rate=rate)
    body = {"model": "smollm2-135m-instruct", "training_dataset": dataset,
            "rho_policy": {"type": "carbon-aware", "rho_min": 0.4, "rho_max": 1.0,
                           "region": "GB"}, "hyperparameters": {"epochs": 3}}
    interval = 2.0 / rate
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        tasks, begin = [], time.perf_counter()
        count = int(seconds * rate / 2)
        for i in range(count):
            due = begin + i * interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            retry = (i % round(1 / retry_share) == 0) if retry_share > 0 else False
            tasks.append(asyncio.create_task(iteration(client, run, body, headers, retry, due)))
        await asyncio.gather(*tasks)
        run.wall_seconds = time.perf_counter() - begin
    return run


def recorded_once(database_url: str, team_id: str, accepted: dict[str, str]) -> tuple[bool, str]:
    """Every accepted key is exactly one row, with the id the client got. Rows whose request
    the client gave up on (timeout) are counted apart: their outcome was unknown to the client,
    which is what a retry with the same Idempotency-Key resolves."""
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        rows = conn.execute("SELECT idempotency_key, id FROM jobs WHERE team_id = %s",
                            (team_id,)).fetchall()
    stored = dict(rows)
    ok = len(rows) == len(stored) and all(stored.get(k) == v for k, v in accepted.items())
    unseen = len(set(stored) - set(accepted))
    detail = f"{len(accepted)} accepted, {len(rows)} rows"
    return ok, detail + (f", {unseen} committed after the client gave up" if unseen else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_cpu_s() -> float | None:
    """CPU seconds the local Postgres server has used so far: its live processes, plus the
    backends that have exited (counted in their parent's children times). None when no
    Postgres process is visible on this machine (a remote server)."""
    total, seen = 0.0, False
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != "postgres":
            continue
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            seen = True
    return total if seen else None


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, over every core; busy excludes
    idle and I/O wait."""
    times = psutil.cpu_times()
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def create_database() -> tuple[str, str]:
    name = f"gt_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(database_url: str, admin_key: str, port: int, data_dir: Path, workers: int,
                 log_level: str = "WARNING") -> subprocess.Popen[bytes]:
    """`greentrainer serve` on a migrated ``database_url``; its output goes to
    ``data_dir/server.log`` (at INFO, one JSON access-log line per request, as in production)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "GREENTRAINER_DATABASE_URL": database_url,
           "GREENTRAINER_ADMIN_KEY": admin_key, "GREENTRAINER_DATA_DIR": str(data_dir),
           "GREENTRAINER_LOG_LEVEL": log_level}
    subprocess.run([sys.executable, "-m", "greentrainer.cli", "migrate"], env=env, check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 (closed with the process)
    server = subprocess.Popen([sys.executable, "-m", "greentrainer.cli", "serve", "--port",
                               str(port), "--workers", str(workers)], env=env, cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("the API server did not start")


def setup_team(base_url: str, admin_key: str) -> tuple[str, dict[str, str], str]:
    admin = {"Authorization": f"Bearer {admin_key}"}
    team = httpx.post(f"{base_url}/teams", json={"name": "load"}, headers=admin).json()
    headers = {"Authorization": f"Bearer {team['api_key']['key']}"}
    rows = "\n".join(json.dumps({"source": f"text {i}", "target": f"sum {i}"}) for i in range(50))
    dataset = httpx.post(f"{base_url}/datasets", files={"file": ("t.jsonl", rows.encode())},
                         headers=headers).json()
    return team["id"], headers, dataset["id"]


def table(runs: list[tuple[Run, bool, str]]) -> str:
    lines = ["| target req/s | achieved req/s | requests | errors | POST p50 / p99 ms "
             "| GET p50 / p99 ms | all p99 ms | accepted jobs recorded exactly once |",
             "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run, ok, detail in runs:
        every = run.post_ms + run.get_ms
        lines.append(
            f"| {run.rate:.0f} | {run.sent / run.wall_seconds:.0f} | {run.sent} | "
            f"{len(run.errors)} | {percentile(run.post_ms, .5):.1f} / "
            f"{percentile(run.post_ms, .99):.1f} | {percentile(run.get_ms, .5):.1f} / "
            f"{percentile(run.get_ms, .99):.1f} | {percentile(every, .99):.1f} | "
            f"{'yes' if ok else 'NO'} ({detail}, {run.retried} retried) |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,300", help="requests/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration per rate")
    parser.add_argument("--warmup-seconds", type=float, default=3.0,
                        help="unreported warm-up at 50 req/s")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--retry-share", type=float, default=0.1,
                        help="share of POSTs sent twice with the same Idempotency-Key")
    args = parser.parse_args()
    name, database_url = create_database()
    admin_key = "gt_bench_" + secrets.token_hex(16)
    port = free_port()
    data_dir = Path(f"/tmp/{name}")
    server = start_server(database_url, admin_key, port, data_dir, args.workers)
    results: list[tuple[Run, bool, str]] = []
    accepted: dict[str, str] = {}
    try:
        base_url = f"http://127.0.0.1:{port}"
        team_id, headers, dataset = setup_team(base_url, admin_key)
        # Warm-up (not reported): connection pools, statement caches, every worker process.
        warm = asyncio.run(load(base_url, headers, dataset, 50, args.warmup_seconds, 0.0))
        accepted.update(warm.accepted)
        for rate in (float(r) for r in args.rates.split(",")):
            run = asyncio.run(load(base_url, headers, dataset, rate, args.seconds,
                                   args.retry_share))
            accepted.update(run.accepted)
            ok, detail = recorded_once(database_url, team_id, accepted)
            results.append((run, ok, detail))
            for error, count in Counter(run.errors).most_common(5):
                print(f"  at {rate:.0f} req/s: {count} x {error}", file=sys.stderr)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:  # an overloaded server still draining its backlog
            server.kill()
            server.wait()
        drop_database(name)
    load_1m = os.getloadavg()[0]
    print(f"POST /jobs + GET /jobs/{{id}}, {args.workers} uvicorn process(es), Postgres, "
          f"{args.seconds:.0f} s per rate, {os.cpu_count()} CPUs shared by client, server and "
          f"Postgres (1-min load average at the end: {load_1m:.1f})\n")
    print(table(results))
    return 0 if all(ok and not run.errors for run, ok, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
