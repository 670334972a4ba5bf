"""`greentrainer scheduler`: the live carbon decision, a dispatch dry run on a JSON queue, or (with
--dispatch) the dispatcher process (`greentrainer dispatcher`)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from greentrainer_carbon.config import build_chain
from greentrainer_carbon.errors import SchedulerError
from greentrainer_carbon.forecaster import ChainSource, Forecaster
from greentrainer_carbon.history import MemoryHistory
from greentrainer_carbon.planner import JobSpec, Planner
from greentrainer_carbon.policy import RhoBounds
from greentrainer_carbon.readings import parse_utc
from greentrainer_carbon.rho_policy import RHO_FLOOR, RhoPolicyKind
from service.pool.fairness import QueuedJob, TeamUsage, order_dispatch
from service.settings import Settings


def _decision(args: argparse.Namespace) -> int:
    carbon = Settings().carbon  # read now: the command may run twice in one process (tests)
    if args.providers:
        carbon = carbon.model_validate({**carbon.model_dump(), "providers": args.providers})
    chain = build_chain(carbon)
    policy = {"type": RhoPolicyKind.CARBON_AWARE, "rho_min": args.rho_min,
              "rho_max": args.rho_max}
    RhoBounds(args.rho_min, args.rho_max)  # names a bad range before anything is asked
    try:
        forecaster = Forecaster(ChainSource(chain), MemoryHistory(), carbon.pool_region)
        planner = Planner(JobSpec(1, policy, 3600.0), forecaster)
        decision = planner.decide(datetime.now(UTC), [])
    finally:
        chain.close()
    events = forecaster.last_events()
    print(json.dumps({"rho": round(decision.rho or 0.0, 4), "reading": decision.reading.to_dict(),
                      "fallback": events[0].to_dict() if events else None,
                      "decision": decision.to_dict()}, indent=2))
    return 0


def _dispatch_dry_run(path: str) -> int:
    """--once --queue FILE: {"queued": [...], "free_slots": {...}, "teams": [...], "fits": {}}."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    queued = [
        QueuedJob(
            str(j["job_id"]),
            j["team"],
            j["gpu_class"],
            parse_utc(j["submitted_at"]),
            int(j.get("gpus", 1)),
            float(j.get("expected_usage", 1.0)),
        )
        for j in spec.get("queued", [])
    ]
    teams = {
        t["team"]: TeamUsage(
            t["team"],
            float(t.get("share", 1.0)),
            float(t.get("recent_usage", 0.0)),
            int(t.get("running_gpus", 0)),
            t.get("quota_gpus"),
        )
        for t in spec.get("teams", [])
    }
    order = order_dispatch(queued, spec.get("free_slots", {}), teams, spec.get("fits"))
    for position, item in enumerate(order, start=1):
        print(f"{position}. start {item.job.job_id} (team {item.job.team}) on {item.gpu_class}")
    if not order:
        print("nothing to start now")
    return 0


def scheduler_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="greentrainer scheduler",
        description="Print the live carbon intensity and the rho it maps to.",
    )
    parser.add_argument(
        "--providers", help="override GREENTRAINER_CARBON__PROVIDERS (e.g. gb,static)"
    )
    parser.add_argument("--rho-min", type=float, default=RHO_FLOOR,
                        help="rho on the dirtiest grid (default %(default)s)")
    parser.add_argument("--rho-max", type=float, default=1.0,
                        help="rho on the cleanest grid (default %(default)s)")
    parser.add_argument(
        "--once", action="store_true", help="one dispatch decision (dry run) and exit"
    )
    parser.add_argument(
        "--queue", help="with --once: JSON file with queued jobs, free slots and teams"
    )
    parser.add_argument(
        "--dispatch", action="store_true",
        help="run the database-backed dispatcher and reconciler until stopped (docs/worker.md)",
    )
    args = parser.parse_args(argv)
    if args.dispatch:
        from greentrainer.commands.dispatcher import dispatch_forever

        return dispatch_forever()
    try:
        if args.once:
            if not args.queue:
                parser.error("--once needs --queue FILE (a dry run on a JSON queue; "
                             "--dispatch runs the dispatcher on the database)")
            return _dispatch_dry_run(args.queue)
        return _decision(args)
    except (SchedulerError, ValueError, KeyError, OSError) as exc:
        print(f"greentrainer scheduler: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
