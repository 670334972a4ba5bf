"""The dispatcher measured alone: a queue seeded straight into Postgres, then `dispatch_once`
cycle after cycle until it is empty (and the reconciler pass before each cycle).

`load_burst.py` uses `dispatch_cycles` after its API bursts, and runs `dispatch_only` for
``--dispatch-only`` (no API server: the --jobs queued jobs of --teams teams are written with bulk
INSERTs; --profile prints a cProfile of one pass at the largest slot count; --analyze runs
ANALYZE after seeding; --freeze-gc freezes the objects loaded before the cycles, as the
scheduler process does). `compare_trees` alternates code trees for --code (before / after):

    python3 benchmarks/load_burst.py --dispatch-only
    git archive main | tar -x -C /tmp/gt-main
    python3 benchmarks/load_burst.py --dispatch-only --code /tmp/gt-main --code . --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from load_jobs import create_database, drop_database, percentile
from sqlalchemy.orm import Session, sessionmaker


def stats(values: list[float]) -> str:
    return (f"{percentile(values, .5):.1f} / {percentile(values, .99):.1f} / "
            f"{max(values) if values else float('nan'):.1f}")


def _seed_queue(database_url: str, teams: int, jobs: int, analyze: bool = False) -> None:
    """A migrated database with ``teams`` teams (one data set each) and ``jobs`` queued jobs,
    submitted round-robin a millisecond apart, written with one multi-row INSERT per table."""
    from sqlalchemy import insert

    from service.db import make_engine, make_session_factory, upgrade
    from service.models import Dataset, Job, Team, new_id, utcnow

    upgrade(database_url)
    engine = make_engine(database_url)
    team_ids = [new_id("team") for _ in range(teams)]
    start = utcnow() - timedelta(hours=1)
    with make_session_factory(engine).begin() as session:
        session.execute(insert(Team), [
            {"id": t, "name": f"burst-{i}", "max_concurrent_jobs": 10_000, "created_at": start}
            for i, t in enumerate(team_ids)])
        session.execute(insert(Dataset), [
            {"id": f"ds_{t}", "team_id": t, "name": "d", "format": "jsonl", "sha256": "0" * 64,
             "size_bytes": 1, "row_count": 20, "source_field": "source", "target_field": "target",
             "storage_key": f"datasets/{t}", "created_at": start} for t in team_ids])
        for first in range(0, jobs, 2000):  # keep each statement's parameters bounded
            rows = []
            for n in range(first, min(jobs, first + 2000)):
                t, at = team_ids[n % teams], start + timedelta(milliseconds=n)
                rows.append({
                    "id": new_id("job"), "team_id": t, "status": "queued",
                    "model": "smollm2-135m-instruct", "model_source": "shipped",
                    "method": "greentrainer", "hyperparameters": {"epochs": 2},
                    "rho_policy": {"type": "fixed", "rho": 0.6}, "gpu_class": "any",
                    "training_dataset_id": f"ds_{t}", "idempotency_key": secrets.token_hex(12),
                    "created_at": at, "updated_at": at, "attempts": 0})
            session.execute(insert(Job), rows)
    if analyze:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def _idle_pool(factory: sessionmaker[Session], slots: int) -> None:
    """Every job queued again, and a pool of ``slots`` idle a100 slots with fresh heartbeats."""
    from sqlalchemy import delete, update

    from service.models import Job, WorkerSlot, utcnow

    with factory.begin() as session:
        session.execute(delete(WorkerSlot))
        session.execute(update(Job).values(status="queued", lease_owner=None,
                                           lease_expires_at=None))
        now = utcnow()
        for n in range(slots):
            session.add(WorkerSlot(name=f"bench:{n}:a100", gpu_class="a100", hostname="bench",
                                   pid=n, heartbeat_at=now, started_at=now))


def _profile_pass(database_url: str, slots: int) -> str:
    """cProfile of one dispatch pass that fills ``slots`` idle slots, after a warm-up pass (the
    next `dispatch_cycles` queues every job again)."""
    import cProfile
    import io
    import pstats

    from sqlalchemy import update

    from service.db import make_engine, make_session_factory
    from service.models import WorkerSlot
    from service.pool.dispatcher import dispatch_once

    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    _idle_pool(factory, slots)
    dispatch_once(factory, lambda *_: None, stale_after_s=3600, pickup_seconds=3600)  # warm up
    with factory.begin() as session:
        session.execute(update(WorkerSlot).values(job_id=None))
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    dispatch_once(factory, lambda *_: None, stale_after_s=3600, pickup_seconds=3600)
    profiler.disable()
    wall_ms = (time.perf_counter() - start) * 1000
    engine.dispose()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write(f"one pass, {slots} slots: {wall_ms:.1f} ms under the profiler, "
              f"{stats.total_calls} calls\n")  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def dispatch_cycles(database_url: str, slots: int) -> tuple[list[float], list[float], int]:
    """Decision time of each dispatch cycle until the queue is empty, and reconciler passes.
    Every job is queued again first and the pool is ``slots`` idle slots. Between cycles the
    started jobs finish and their slots are idle again, so, as in a real pool, no more jobs are
    running than there are slots (the fair-share pass counts each team's running jobs)."""
    from sqlalchemy import update

    from service.db import make_engine, make_session_factory
    from service.models import Job, WorkerSlot, utcnow
    from service.pool.dispatcher import dispatch_once
    from service.pool.reconciler import reconcile

    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    _idle_pool(factory, slots)
    sent: list[str] = []
    cycle_ms: list[float] = []
    reconcile_ms: list[float] = []
    while True:
        start = time.perf_counter()
        reconcile(factory, max_attempts=3, stale_after_s=3600)
        reconcile_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        started = dispatch_once(factory, lambda job_id, _gpu: sent.append(job_id),
                                stale_after_s=3600, pickup_seconds=3600)
        cycle_ms.append((time.perf_counter() - start) * 1000)
        if not started:
            cycle_ms.pop()  # the last, empty pass decides nothing
            break
        with factory.begin() as session:  # the workers ran their jobs: slots idle again
            session.execute(update(Job).where(Job.id.in_([s.job_id for s in started]))
                            .values(status="succeeded", lease_owner=None, lease_expires_at=None))
            session.execute(update(WorkerSlot).values(job_id=None,
                                                      heartbeat_at=utcnow() + timedelta(0)))
    engine.dispose()
    return cycle_ms, reconcile_ms, len(set(sent)) if len(set(sent)) == len(sent) else -1


def print_dispatch(passes: list[tuple[int, list[float], list[float], int]]) -> None:
    print("\n| idle slots per cycle | cycles | distinct jobs sent | dispatch cycle p50 / p99 / max "
          "ms (target < 100) | reconcile pass p50 / p99 / max ms |\n|---:|---:|---:|---:|---:|")
    for slots, cycles, reconciles, dispatched in passes:
        print(f"| {slots} | {len(cycles)} | {dispatched} | {stats(cycles)} | "
              f"{stats(reconciles)} |")


def _noise_floor(database_url: str, transactions: int = 500) -> list[float]:
    """Time of a one-statement read transaction (a pooled connection, SELECT, COMMIT), over and
    over: how long this machine makes the smallest database round trip wait right now."""
    from sqlalchemy import func, select

    from service.db import make_engine, make_session_factory
    from service.models import Team

    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    times = []
    for _ in range(transactions):
        start = time.perf_counter()
        with factory.begin() as session:
            session.scalar(select(func.count()).select_from(Team))
        times.append((time.perf_counter() - start) * 1000)
    engine.dispose()
    return times


def dispatch_only(args: argparse.Namespace) -> int:
    """Seed the queue directly and measure only the dispatcher (no API server, no bursts)."""
    name, database_url = create_database()
    passes = []
    profile = ""
    try:
        begin = time.perf_counter()
        _seed_queue(database_url, args.teams, args.jobs, args.analyze)
        seed_s = time.perf_counter() - begin
        counts = [int(n) for n in args.slots.split(",")]
        if args.freeze_gc:  # as `greentrainer scheduler --dispatch` does before its loop
            gc.collect()
            gc.freeze()
        if args.profile:
            profile = _profile_pass(database_url, max(counts))
        for slots in counts:
            passes.append((slots, *dispatch_cycles(database_url, slots)))
        floor = _noise_floor(database_url)
    finally:
        drop_database(name)
    print(f"{args.jobs} queued jobs of {args.teams} teams seeded in {seed_s:.1f} s (bulk INSERT"
          f"{', then ANALYZE' if args.analyze else ''}), Postgres; dispatcher only"
          f"{', gc.freeze() before the cycles' if args.freeze_gc else ''}; "
          f"{os.cpu_count()} CPUs shared with other work (1-min load {os.getloadavg()[0]:.1f})")
    if profile:
        print("\n```\n" + profile.rstrip() + "\n```")
    print_dispatch(passes)
    print(f"\nnoise floor, {len(floor)} one-SELECT transactions right after: p50 / p99 / max "
          f"{stats(floor)} ms")
    return 0 if all(sent == args.jobs for *_, sent in passes) else 1


def compare_trees(args: argparse.Namespace, script: Path, code_env: str) -> int:
    """`dispatch_only` for each tree of ``args.code`` in turn, ``args.rounds`` times, each in a
    process of its own with that tree's service code first on sys.path (this benchmark's code
    stays the same for every tree), so that before and after meet the same load."""
    options = ["--dispatch-only", "--jobs", str(args.jobs), "--teams", str(args.teams),
               "--slots", args.slots] + (["--analyze"] if args.analyze else []) + \
        (["--freeze-gc"] if args.freeze_gc else [])
    failed = 0
    for round_ in range(1, args.rounds + 1):
        for tree in args.code:
            commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip()
            print(f"\n### round {round_}, code {tree.resolve()} ({commit or 'not a checkout'})",
                  flush=True)
            env = {**os.environ, code_env: str(tree.resolve())}
            failed |= subprocess.run([sys.executable, str(script), *options], env=env).returncode
    return 1 if failed else 0
