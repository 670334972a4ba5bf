"""One scheduler pass (`service.pool.loop.tick`) over a queue of deadline jobs: its wall time, its
CPU in this process and in the Postgres backends, the statements it sends, and the memory (peak
RSS of the process, and tracemalloc's peak of one more pass).

The queue is ``--jobs`` queued carbon-aware jobs of ``--teams`` teams with far-apart deadlines
(spread evenly from one hour to ``--max-deadline-days`` ahead), seeded with bulk INSERTs into a
fresh Postgres database (benchmarks/load_jobs.py), and a grid dirty for six hours and clean
after, so that every job waits and every pass re-plans it through the carbon planner; the
recorded history is read from the database, as in production. Pass ``--far`` to add that many
jobs whose deadline is 9999-12-31 (rows written before deadlines were bounded at submission).

    python3 benchmarks/scheduler_pass.py --jobs 10000 --passes 3
    python3 benchmarks/scheduler_pass.py --jobs 10000 --passes 3 --far 10

Results: benchmarks/results/scheduler_pass.md. The first pass plans every job (each one waits
for its window or starts); the later ones re-plan the waiting ones, as every pass of the loop does.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# GT_CODE=<a checkout> measures that tree's service code (before / after) with this script
sys.path.insert(0, os.environ.get("GT_CODE", str(Path(__file__).resolve().parent.parent)))

from load_jobs import PG_ADMIN, create_database, drop_database  # noqa: E402


def seed(database_url: str, teams: int, jobs: int, max_days: float, far: int) -> None:
    from sqlalchemy import insert

    from service.db import make_engine, make_session_factory, upgrade
    from service.models import Dataset, Job, Team, new_id, utcnow

    upgrade(database_url)
    engine = make_engine(database_url)
    team_ids = [new_id("team") for _ in range(teams)]
    now = utcnow()
    with make_session_factory(engine).begin() as session:
        session.execute(insert(Team), [{"id": t, "name": f"pass-{i}", "max_concurrent_jobs": 10_000,
                                        "created_at": now} for i, t in enumerate(team_ids)])
        session.execute(insert(Dataset), [
            {"id": f"ds_{t}", "team_id": t, "name": "d", "format": "jsonl", "sha256": "0" * 64,
             "size_bytes": 1, "row_count": 20, "source_field": "source", "target_field": "target",
             "storage_key": f"datasets/{t}", "created_at": now} for t in team_ids])
        total = jobs + far
        for first in range(0, total, 2000):
            rows = []
            for n in range(first, min(total, first + 2000)):
                t = team_ids[n % teams]
                deadline = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) if n >= jobs else
                            now + timedelta(hours=1) + (n / max(jobs, 1)) * timedelta(days=max_days))
                policy = {"type": "carbon-aware", "rho_min": 0.3, "rho_max": 0.8, "region": "GB",
                          "deadline": deadline.isoformat()}
                rows.append({
                    "id": new_id("job"), "team_id": t, "status": "queued",
                    "model": "smollm2-135m-instruct", "model_source": "shipped",
                    "method": "greentrainer", "hyperparameters": {"epochs": 2},
                    "rho_policy": policy, "region": "GB", "deadline": deadline, "gpu_class": "any",
                    "training_dataset_id": f"ds_{t}", "idempotency_key": secrets.token_hex(12),
                    "created_at": now, "updated_at": now, "attempts": 0})
            session.execute(insert(Job), rows)
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def server_cpu_s(database: str) -> float:
    """CPU seconds the Postgres backends of ``database`` have used (their /proc entries: the
    server runs on this machine). With the wall time on a shared machine swinging with the
    load, the CPU a pass costs the client and the server is the steadier measure."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # not on this machine, or gone
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--max-deadline-days", type=float, default=30.0)
    parser.add_argument("--far", type=int, default=0)
    args = parser.parse_args()

    import numpy as np
    from sqlalchemy import event

    from greentrainer_carbon.energy import EnergyModel
    from greentrainer_carbon.forecaster import Forecaster, SourceAnswer
    from greentrainer_carbon.history import slot_of, slot_start
    from greentrainer_carbon.readings import CarbonReading
    from service.db import make_engine, make_session_factory
    from service.heap import settle_heap
    from service.models import utcnow
    from service.pool.intensity import DbHistory
    from service.pool.loop import tick
    from service.settings import PoolSettings

    class DirtyFirst:
        """Dirty for the next 6 hours, clean after: every job with room waits, and every pass
        re-plans it (the costly case; a flat grid would start them all at once)."""

        def __init__(self) -> None:
            self.first = slot_of(utcnow())

        def ask(self, first_slot: int, n_slots: int) -> SourceAnswer:
            offsets = np.arange(first_slot, first_slot + n_slots) - self.first
            grid = np.where(offsets < 12, 400.0, 50.0)
            return SourceAnswer(CarbonReading(float(grid[0]), slot_start(first_slot), "bench"),
                                grid, 250.0)

    class Planning:
        """As production's `CarbonPlanning`: the recorded history read from the database."""

        energy = EnergyModel()

        def __init__(self, history: DbHistory) -> None:
            self.history = history

        def forecaster(self, region: str | None) -> Forecaster:
            return Forecaster(DirtyFirst(), self.history, region or "GB")

        def now(self) -> datetime:
            return datetime.now(UTC)

    name, url = create_database()
    try:
        seed(url, args.teams, args.jobs, args.max_deadline_days, args.far)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        planning = Planning(DbHistory(factory))
        settle_heap()  # as `greentrainer scheduler` does before its first pass
        pool = PoolSettings(default_epoch_seconds=1800)
        print(f"{args.jobs} queued deadline jobs (1 h to {args.max_deadline_days:g} days ahead)"
              f"{f' + {args.far} due 9999-12-31' if args.far else ''}, {args.teams} teams, "
              f"Postgres, no slot free (the pass plans, nothing starts); {os.cpu_count()} CPUs "
              f"shared with other work (1-min load {os.getloadavg()[0]:.1f})\n")
        print("| pass | wall ms | CPU ms (this process) | CPU ms (Postgres) | statements "
              "(writing) | peak RSS MB (whole process) |\n|---:|---:|---:|---:|---:|---:|")
        sent: list[str] = []
        event.listen(engine, "before_cursor_execute",
                     lambda _c, _k, statement, *_: sent.append(statement.split(None, 1)[0]))
        for n in range(1, args.passes + 1):
            sent.clear()
            server = server_cpu_s(name)
            start, cpu = time.perf_counter(), time.process_time()
            tick(factory, pool, lambda *_: None, planning)
            wall_ms = (time.perf_counter() - start) * 1000
            cpu_ms = (time.process_time() - cpu) * 1000
            server_ms = (server_cpu_s(name) - server) * 1000
            writing = sum(verb.upper() in ("INSERT", "UPDATE", "DELETE") for verb in sent)
            print(f"| {n} | {wall_ms:.0f} | {cpu_ms:.0f} | {server_ms:.0f} | {len(sent)} "
                  f"({writing}) | {rss_peak_mb():.0f} |", flush=True)
        tracemalloc.start()  # slower: one more pass, for what it allocates at its peak
        tick(factory, pool, lambda *_: None, planning)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"\none more pass under tracemalloc: peak {peak / 1e6:.1f} MB allocated")
        engine.dispose()
    finally:
        drop_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
