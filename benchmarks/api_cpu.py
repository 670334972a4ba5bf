"""API CPU per request: SQL statements, API-process and Postgres CPU milliseconds per POST /jobs
and GET /jobs/{id}, side by side, for one or more source trees in the same run.

For each tree (``--code DIR``, default this checkout) it starts one uvicorn process serving that
tree's app (uvloop and httptools, as `greentrainer serve`) on a fresh, migrated Postgres database,
with a SQLAlchemy ``before_cursor_execute`` listener counting the statements the app sends. A
client in this process (so its CPU is not counted) creates a team and a data set, warms up, then
sends one request at a time: --requests new jobs (each with its own Idempotency-Key), as many
replays of a key already used, and as many reads of a job. The API CPU is the server process's
user + system time over each phase (psutil), divided by the number of requests; the Postgres
CPU is that of the database's backend processes over the same phase. Statements are what the
app sends (BEGIN and COMMIT/ROLLBACK, sent by the driver around each transaction, come on top).
Trees are measured in turn, --rounds times, and the round with the median API CPU is shown, so
that a load beside the benchmark weighs on every tree alike.

    python3 benchmarks/api_cpu.py                                   # this checkout, 2,000 each
    python3 benchmarks/api_cpu.py --code /tmp/gt-main --code . --rounds 3   # before / after
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_jobs import create_database, drop_database, free_port  # noqa: E402

STATEMENTS_PATH = "/_bench/statements"
BODY = {"model": "smollm2-135m-instruct", "gpu_class": "any",
        "rho_policy": {"type": "fixed", "rho": 0.6}, "hyperparameters": {"epochs": 2}}
PHASES = ("POST /jobs (new)", "POST /jobs (replayed key)", "GET /jobs/{id}")


def serve(port: int) -> None:
    """The server side (run with the tree under test first on sys.path): the tree's app plus a
    statement counter and a route that reads it."""
    import uvicorn
    from sqlalchemy import event

    from service import logs
    from service.app import create_app
    from service.settings import Settings

    settings = Settings()
    app = create_app(settings)
    statements = [0]

    @event.listens_for(app.state.context.engine, "before_cursor_execute")
    def _count(*_args: object) -> None:
        statements[0] += 1

    @app.get(STATEMENTS_PATH, include_in_schema=False)
    async def _statements() -> int:
        return statements[0]

    logs.configure("WARNING")
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


@dataclass
class Phase:
    requests: int
    statements: int
    cpu_s: float
    db_cpu_s: float
    wall_ms: list[float]

    @property
    def statements_per_request(self) -> float:
        return self.statements / self.requests

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s / self.requests * 1000

    @property
    def db_cpu_ms_per_request(self) -> float:
        return self.db_cpu_s / self.requests * 1000


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _backend_cpu_s(database_url: str, database: str) -> dict[int, float]:
    """CPU seconds of each Postgres backend serving ``database`` (this query's own excluded)."""
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        pids = [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,))]
    seconds = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            seconds[pid] = _cpu_s(psutil.Process(pid))
    return seconds


def _start(code: Path, database_url: str, admin_key: str, data_dir: Path
           ) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PYTHONPATH": str(code), "GREENTRAINER_DATABASE_URL": database_url,
           "GREENTRAINER_ADMIN_KEY": admin_key, "GREENTRAINER_DATA_DIR": str(data_dir),
           "GREENTRAINER_LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "-m", "greentrainer.cli", "migrate"], env=env, check=True,
                   cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env, cwd=code)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz").status_code == 200:
                return server, base_url
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"the API of {code} did not start")


Request = tuple[str, str, dict[str, object] | None, dict[str, str]]


def _measure(client: httpx.Client, process: psutil.Process, database_url: str, database: str,
             requests: list[Request]) -> Phase:
    statements = int(client.get(STATEMENTS_PATH).json())
    db_cpu = _backend_cpu_s(database_url, database)
    wall_ms = []
    cpu = _cpu_s(process)
    for method, path, body, headers in requests:
        start = time.perf_counter()
        r = client.request(method, path, json=body, headers=headers)
        wall_ms.append((time.perf_counter() - start) * 1000)
        if r.status_code not in (200, 201):
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:200]}")
    cpu = _cpu_s(process) - cpu
    db_cpu_s = sum(s - db_cpu.get(pid, 0.0)
                   for pid, s in _backend_cpu_s(database_url, database).items())
    return Phase(len(requests), int(client.get(STATEMENTS_PATH).json()) - statements, cpu,
                 db_cpu_s, wall_ms)


def run_tree(code: Path, count: int, warmup: int) -> list[Phase]:
    """The three phases (`PHASES`) against a fresh database and server of ``code``."""
    name, database_url = create_database()
    admin_key = "gt_bench_" + secrets.token_hex(16)
    server, base_url = _start(code, database_url, admin_key, Path(f"/tmp/{name}"))
    try:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            r = client.post("/teams", json={"name": "cpu", "max_concurrent_jobs": 10000},
                            headers={"Authorization": f"Bearer {admin_key}"})
            r.raise_for_status()
            team = {"Authorization": f"Bearer {r.json()['api_key']['key']}"}
            d = client.post("/datasets", headers=team, files={
                "file": ("t.jsonl", b'{"source": "a text", "target": "a summary"}\n')})
            d.raise_for_status()
            body = {**BODY, "training_dataset": d.json()["id"]}
            posts: list[Request] = [("POST", "/jobs", body, {**team, "Idempotency-Key": key})
                                    for key in (secrets.token_hex(12) for _ in range(count))]

            def measure(requests: list[Request]) -> Phase:
                return _measure(client, psutil.Process(server.pid), database_url, name, requests)

            measure([("POST", "/jobs", body, {**team, "Idempotency-Key": secrets.token_hex(12)})
                     for _ in range(warmup)])
            created = measure(posts)
            replayed = measure(posts)
            read = measure([("GET", f"/jobs/{job_id}", None, team)
                            for job_id in _job_ids(client, team)[:count]])
    finally:
        server.terminate()
        server.wait(timeout=30)
        drop_database(name)
    return [created, replayed, read]


def _job_ids(client: httpx.Client, team: dict[str, str]) -> list[str]:
    """Every job of the team, newest first (GET /jobs, page after page)."""
    ids: list[str] = []
    params: dict[str, str | int] = {"limit": 100}
    while True:
        page = client.get("/jobs", params=params, headers=team).json()
        ids += [job["id"] for job in page["data"]]
        if not page["has_more"]:
            return ids
        params["after"] = page["last_id"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", action="append", type=Path,
                        help="source tree to measure (repeatable; default: this checkout)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per phase")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1, help="measure every tree this many times")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return 0
    trees = [c.resolve() for c in args.code or [Path(__file__).resolve().parents[1]]]
    results: dict[Path, list[list[Phase]]] = {tree: [] for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:
            results[tree].append(run_tree(tree, args.requests, args.warmup))
    print(f"{args.requests} requests per phase, one at a time, 1 uvicorn process, Postgres; "
          f"median of {args.rounds} round(s); {os.cpu_count()} CPUs shared by client, server and "
          f"Postgres (1-min load {os.getloadavg()[0]:.1f})\n")
    print("| tree | request | statements / request | API CPU ms / request (each round) | "
          "Postgres CPU ms / request | wall p50 / p99 ms |\n|---|---|---:|---:|---:|---:|")
    for tree, rounds in results.items():
        for i, phase_name in enumerate(PHASES):
            phases = [r[i] for r in rounds]
            phase = sorted(phases, key=lambda p: p.cpu_s)[len(phases) // 2]
            wall = sorted(phase.wall_ms)
            each = " ".join(f"{p.cpu_ms_per_request:.2f}" for p in phases)
            print(f"| {tree} | {phase_name} | {phase.statements_per_request:.2f} | "
                  f"{phase.cpu_ms_per_request:.2f} ({each}) | {phase.db_cpu_ms_per_request:.2f} | "
                  f"{statistics.median(wall):.2f} / {wall[int(len(wall) * 0.99)]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
