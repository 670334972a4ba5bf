"""Burst load: 10,000 jobs submitted by 20 teams in bursts, against Postgres, then dispatched.

Starts `greentrainer serve` on a fresh Postgres database (helpers from load_jobs.py), creates
--teams teams with a data set each, then fires --bursts bursts: in each, every team submits
its share of the burst at once (at most --concurrency requests in flight), and --retry-share
of the submissions are sent twice with the same Idempotency-Key (a client retrying). Between
bursts it pauses --pause seconds. It reports POST /jobs latency (p50/p99/max, per burst and
overall) and checks in the database that every accepted job is recorded exactly once. The
client (one-connection submitters over --client-procs processes) is load_client.py.

Then it measures the dispatcher: --slots idle worker slots, and `dispatch_once` is run cycle
after cycle (each cycle fills every slot; the slots are freed between cycles) until the queue
of all submitted jobs is empty. It reports the decision time per cycle (p50/p99/max) and the
reconciler pass time.

With --sweep 4,8,16,64 it then submits --sweep-jobs more jobs at each of those numbers of
requests in flight and reports latency and throughput per level: a closed-loop client with C
requests in flight sees about C / throughput of latency, so this shows which burst
concurrency the machine can serve within a latency target.

With --dispatch-only, no API server and no bursts: the --jobs queued jobs of --teams teams are
written straight into a fresh, migrated database with bulk INSERTs, and only the dispatch and
reconcile cycles are measured (--profile prints a cProfile of one pass at the largest slot count).

    python3 benchmarks/load_burst.py                      # 10,000 jobs, 20 teams, 20 bursts
    python3 benchmarks/load_burst.py --jobs 2000 --bursts 5   # a quick run
    python3 benchmarks/load_burst.py --dispatch-only      # 10,000 seeded jobs, dispatcher only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

# The service code under test: this checkout, or the tree `--dispatch-only --code DIR` names.
CODE_ENV = "GT_BENCH_CODE"
sys.path.insert(0, os.environ.get(CODE_ENV, str(Path(__file__).resolve().parents[1])))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dispatch_cycles import (  # noqa: E402
    compare_trees,
    dispatch_cycles,
    dispatch_only,
    print_dispatch,
    stats,
)
from load_client import submit_burst  # noqa: E402  (benchmarks/ is not a package)
from load_jobs import (  # noqa: E402
    create_database,
    drop_database,
    free_port,
    machine_busy_s,
    postgres_cpu_s,
    start_server,
)


def _setup_teams(base_url: str, admin_key: str, count: int) -> list[tuple[dict[str, str], str]]:
    admin = {"Authorization": f"Bearer {admin_key}"}
    teams = []
    for i in range(count):
        r = httpx.post(f"{base_url}/teams", json={"name": f"burst-{i}",
                                                  "max_concurrent_jobs": 10000}, headers=admin)
        r.raise_for_status()
        team = {"Authorization": f"Bearer {r.json()['api_key']['key']}",
                "X-Team-Id": r.json()["id"]}
        rows = "\n".join(json.dumps({"source": f"team {i} text {n}", "target": f"sum {n}"})
                         for n in range(20))
        d = httpx.post(f"{base_url}/datasets", files={"file": ("t.jsonl", rows.encode())},
                       headers=team)
        d.raise_for_status()
        teams.append((team, str(d.json()["id"])))
    return teams


def _recorded_once(database_url: str, accepted: dict[str, tuple[str, str]]) -> tuple[bool, str]:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        rows = conn.execute("SELECT team_id, idempotency_key, id FROM jobs").fetchall()
    by_key = Counter((team, key) for team, key, _ in rows)
    stored = {(team, key): job for team, key, job in rows}
    duplicates = sum(1 for n in by_key.values() if n > 1)
    missing = sum(1 for key, (team, job) in accepted.items() if stored.get((team, key)) != job)
    ok = duplicates == 0 and missing == 0 and len(rows) == len(accepted)
    return ok, (f"{len(accepted)} accepted, {len(rows)} rows, {duplicates} duplicated keys, "
                f"{missing} missing or different")


class AccessLog:
    """The API's own view of POST /jobs latency, from its access log (one JSON line per request,
    timed by the HTTP middleware from when the app gets the request until it has sent the
    reply). The client's figure adds the kernel's and the event loop's queues on both sides;
    comparing the two shows how much of a tail is waiting outside the app."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def skip(self) -> None:
        """Forget the lines written so far."""
        self.offset = self.path.stat().st_size

    def take(self) -> list[float]:
        """Durations (ms) of the POST /jobs lines written since the last skip or take."""
        durations = []
        with self.path.open("rb") as log:
            log.seek(self.offset)
            for line in log:
                if b'"route": "/jobs"' not in line or b'"POST"' not in line:
                    continue
                with contextlib.suppress(ValueError, KeyError):
                    durations.append(float(json.loads(line)["duration_ms"]))
            self.offset = log.tell()
        return durations


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of the API server and its uvicorn worker processes."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _client_cpu() -> float:
    """User + system CPU time of this process and its finished client processes."""
    own, done = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + done.ru_utime + done.ru_stime


def _sessions(database_url: str) -> int:
    """Sessions ever started on the database (Postgres 14+), this query's own included."""
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                           ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class _Counters:
    """Clocks read before and after a sweep level (seconds); subtracting gives the level's."""
    wall: float
    api: float
    postgres: float | None
    client: float
    busy: float
    cpu_total: float
    sessions: int

    @classmethod
    def now(cls, server_pid: int, database_url: str) -> _Counters:
        return cls(time.perf_counter(), _cpu_seconds(server_pid), postgres_cpu_s(), _client_cpu(),
                   *machine_busy_s(), _sessions(database_url))

    def __sub__(self, start: _Counters) -> _Counters:
        postgres = (None if self.postgres is None or start.postgres is None
                    else self.postgres - start.postgres)
        return _Counters(self.wall - start.wall, self.api - start.api, postgres,
                         self.client - start.client, self.busy - start.busy,
                         self.cpu_total - start.cpu_total, self.sessions - start.sessions)


@dataclass(frozen=True)
class SweepLevel:
    """One level of the sweep: what the client and the API's access log timed, and what it
    cost. "machine busy" is the share of every core's time not idle, so a level that does not
    keep the machine busy is limited by waiting (locks, a queue), not by CPU. "connections
    opened" counts the Postgres sessions started on the benchmark's database during the level
    (each costs Postgres a process start, several ms of CPU)."""
    in_flight: int
    latencies: list[float]
    inside: list[float]
    used: _Counters

    def row(self) -> str:
        n, used = len(self.latencies), self.used
        postgres = "-" if used.postgres is None else f"{used.postgres / n * 1000:.1f}"
        return (f"| {self.in_flight} | {n} | {n / used.wall:.0f} | {stats(self.latencies)} | "
                f"{stats(self.inside)} | {used.api / n * 1000:.1f} / {postgres} / "
                f"{used.client / n * 1000:.1f} | {used.busy / used.cpu_total:.0%} | "
                f"{used.sessions} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between bursts")
    parser.add_argument("--retry-share", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--client-procs", type=int, default=max(1, (os.cpu_count() or 1) // 4),
                        help="client processes sharing the requests in flight (default: a quarter "
                             "of the CPUs)")
    parser.add_argument("--slots", default="20,200",
                        help="idle worker slots per cycle, comma-separated (one pass each)")
    parser.add_argument("--sweep", default="",
                        help="after the bursts, requests in flight to sweep, comma-separated")
    parser.add_argument("--sweep-jobs", type=int, default=1000, help="jobs submitted per sweep level")
    parser.add_argument("--dispatch-only", action="store_true",
                        help="seed the queued jobs with bulk INSERTs; measure only the dispatcher")
    parser.add_argument("--profile", action="store_true",
                        help="with --dispatch-only: cProfile one pass at the largest slot count")
    parser.add_argument("--analyze", action="store_true",
                        help="with --dispatch-only: ANALYZE after seeding (as autovacuum does within "
                             "a minute); without it the planner starts with no statistics")
    parser.add_argument("--freeze-gc", action="store_true",
                        help="with --dispatch-only: gc.freeze() before the cycles, as the scheduler "
                             "process does before its loop")
    parser.add_argument("--code", action="append", type=Path, default=[],
                        help="with --dispatch-only: a tree whose service code to measure (repeat to "
                             "alternate trees, e.g. a `git archive` of main and .)")
    parser.add_argument("--rounds", type=int, default=1, help="with --code: runs of each tree")
    args = parser.parse_args()
    if args.dispatch_only and args.code:
        return compare_trees(args, Path(__file__).resolve(), CODE_ENV)
    if args.dispatch_only:
        return dispatch_only(args)
    per_team = args.jobs // (args.teams * args.bursts)
    name, database_url = create_database()
    admin_key = "gt_bench_" + secrets.token_hex(16)
    port = free_port()
    server = start_server(database_url, admin_key, port, Path(f"/tmp/{name}"), args.workers,
                          log_level="INFO")
    access = AccessLog(Path(f"/tmp/{name}") / "server.log")
    accepted: dict[str, tuple[str, str]] = {}
    errors: list[str] = []
    per_burst: list[list[float]] = []
    sweep: list[SweepLevel] = []
    seen_by_api: list[float] = []
    try:
        base_url = f"http://127.0.0.1:{port}"
        teams = _setup_teams(base_url, admin_key, args.teams)
        access.skip()
        begin = time.perf_counter()
        for _ in range(args.bursts):
            per_burst.append(submit_burst(base_url, teams, per_team, args.concurrency,
                                    args.retry_share, accepted, errors, args.client_procs))
            time.sleep(args.pause)
        submit_s = time.perf_counter() - begin
        seen_by_api = access.take()
        burst_accepted = len(accepted)
        for level in (int(n) for n in args.sweep.split(",") if n):
            time.sleep(args.pause)
            access.skip()
            before = _Counters.now(server.pid, database_url)
            latencies = submit_burst(base_url, teams, max(1, args.sweep_jobs // args.teams),
                               level, 0.0, accepted, errors, args.client_procs)
            sweep.append(SweepLevel(level, latencies, access.take(),
                                    _Counters.now(server.pid, database_url) - before))
    finally:
        server.terminate()
        server.wait(timeout=30)
    passes = []
    try:
        ok, detail = _recorded_once(database_url, accepted)
        for slots in (int(n) for n in args.slots.split(",")):
            passes.append((slots, *dispatch_cycles(database_url, slots)))
    finally:
        drop_database(name)
    every = [v for burst in per_burst for v in burst]
    print(f"{burst_accepted} jobs (+ {len(accepted) - burst_accepted} in the sweep) by {args.teams} teams in "
          f"{args.bursts} bursts of "
          f"{per_team * args.teams} ({args.retry_share:.0%} sent twice), {args.concurrency} in "
          f"flight from {args.client_procs} client process(es), {args.workers} uvicorn process(es), Postgres; "
          f"{os.cpu_count()} CPUs shared "
          f"by client, server and Postgres (1-min load {os.getloadavg()[0]:.1f})\n")
    print("| burst | requests | POST p50 / p99 / max ms |\n|---:|---:|---:|")
    for i, burst in enumerate(per_burst):
        print(f"| {i + 1} | {len(burst)} | {stats(burst)} |")
    print(f"\n| what | value |\n|---|---|\n| submission wall time | {submit_s:.1f} s |\n"
          f"| requests | {len(every)} ({len(every) / submit_s:.0f}/s incl. pauses) |\n"
          f"| POST /jobs p50 / p99 / max | {stats(every)} ms (target p99 < 100) |\n"
          f"| the same, timed inside the API ({len(seen_by_api)} lines) | {stats(seen_by_api)} ms |\n"
          f"| errors | {len(errors)} {Counter(errors).most_common(3)} |\n"
          f"| jobs accepted | {burst_accepted} of {per_team * args.teams * args.bursts} in the bursts, "
          f"{len(accepted) - burst_accepted} in the sweep |\n"
          f"| recorded exactly once | {'yes' if ok else 'NO'} ({detail}) |")
    if sweep:
        print("\n| requests in flight | requests | requests/s | POST p50 / p99 / max ms | inside the API "
              "p50 / p99 / max ms | CPU ms per request: API / Postgres / client | machine busy | connections "
              "opened |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
        for level in sweep:
            print(level.row())
    print_dispatch(passes)
    all_sent = all(sent == len(accepted) for *_, sent in passes)
    hard = [e for e in errors if "retried" not in e]
    return 0 if ok and not hard and all_sent else 1


if __name__ == "__main__":
    raise SystemExit(main())
