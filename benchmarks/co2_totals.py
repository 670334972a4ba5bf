"""The dispatcher's CO2-this-month read: summing the month's epochs (before migration 0006) vs the
per-team running totals (`TeamMonthCo2`), side by side on one Postgres database.

Seeds --teams teams with --epochs epochs recorded this month (bulk INSERTs at revision 0005), then
upgrades to head (0006 adds the epochs up: its time is printed too) and times both reads for all
teams, --repeat times each, alternating.

    python3 benchmarks/co2_totals.py --epochs 300000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_jobs import create_database, drop_database  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=300_000)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    from sqlalchemy import func, insert, select, text

    from service.db import make_engine, make_session_factory, upgrade
    from service.models import Dataset, Job, JobEpoch, Team, new_id, utcnow
    from service.quotas import co2_kg_this_month

    name, url = create_database()
    try:
        upgrade(url, "0005")
        engine = make_engine(url)
        now = utcnow()
        teams = [new_id("team") for _ in range(args.teams)]
        with make_session_factory(engine).begin() as session:
            session.execute(insert(Team), [{"id": t, "name": t, "max_concurrent_jobs": 5,
                                            "created_at": now} for t in teams])
            session.execute(insert(Dataset), [
                {"id": f"ds_{t}", "team_id": t, "name": "d", "format": "jsonl", "sha256": "0" * 64,
                 "size_bytes": 1, "row_count": 1, "source_field": "s", "target_field": "t",
                 "storage_key": "k", "created_at": now} for t in teams])
            jobs = [new_id("job") for _ in range(args.epochs // 10)]  # 10 epochs a job
            session.execute(insert(Job), [
                {"id": j, "team_id": teams[i % args.teams], "status": "succeeded", "model": "m",
                 "model_source": "shipped", "method": "greentrainer", "hyperparameters": {},
                 "rho_policy": {}, "gpu_class": "any", "training_dataset_id": f"ds_{teams[i % args.teams]}",
                 "created_at": now, "updated_at": now, "attempts": 1} for i, j in enumerate(jobs)])
            for first in range(0, args.epochs, 20_000):
                session.execute(insert(JobEpoch).execution_options(render_nulls=True), [
                    {"job_id": jobs[n // 10], "epoch_index": n % 10, "rho": 0.6,
                     "selected_tensor_count": 1, "selected_tensor_names": [], "predicted_flops": 1.0,
                     "executed_flops": 1.0, "full_ft_flops": 1.0, "wall_seconds": 1.0,
                     "kg_co2": 0.001, "energy_is_estimate": True, "created_at": now}
                    for n in range(first, min(args.epochs, first + 20_000))])
        started = time.perf_counter()
        upgrade(url)
        migrate_s = time.perf_counter() - started
        since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        old = (select(Job.team_id, func.coalesce(func.sum(JobEpoch.kg_co2), 0.0))
               .join(JobEpoch, JobEpoch.job_id == Job.id)
               .where(Job.team_id.in_(teams), JobEpoch.created_at >= since).group_by(Job.team_id))
        timings: dict[str, list[float]] = {"sum of the month's epochs (before 0006)": [],
                                           "running totals (0006)": []}
        factory = make_session_factory(engine)
        with factory() as session:
            session.execute(text("ANALYZE"))
            for _ in range(args.repeat):
                for label in timings:
                    t = time.perf_counter()
                    if label.startswith("sum"):
                        got_old = dict(session.execute(old).all())
                    else:
                        got_new = co2_kg_this_month(session, teams, now=now)
                    timings[label].append((time.perf_counter() - t) * 1000)
        engine.dispose()
    finally:
        drop_database(name)
    agree = all(abs(got_old[t] - got_new[t]) < 1e-6 for t in teams)
    print(f"{args.epochs:,} epochs this month, {args.teams} teams; migration 0006 took "
          f"{migrate_s:.1f} s; both reads agree: {'yes' if agree else 'NO'}\n")
    print("| read (all teams) | median ms | p90 ms |\n|---|---:|---:|")
    for label, values in timings.items():
        values.sort()
        print(f"| {label} | {statistics.median(values):.2f} | {values[int(len(values) * .9)]:.2f} |")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
