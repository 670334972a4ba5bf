"""`greentrainer scheduler` (live decision / dispatch dry run) and `greentrainer simulate`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from .errors import SchedulerError
from .fairness import QueuedJob, TeamUsage, order_dispatch
from .outlook import ChainOutlook
from .policy import RhoBounds
from .readings import parse_utc
from .report import markdown_report
from .schedule import CarbonAwareRhoSchedule
from .settings import SchedulerSettings, build_chain
from .simulator import LONG_JOB, SHORT_JOB, SimConfig, TraceSimulation
from .trace_data import load_trace

KINDS = {"short": SHORT_JOB, "long": LONG_JOB}


def _decision(args: argparse.Namespace) -> int:
    settings = SchedulerSettings(**({"carbon_providers": args.providers} if args.providers else {}))
    chain = build_chain(settings)
    try:
        bounds = RhoBounds(args.rho_min, args.rho_max)
        schedule = CarbonAwareRhoSchedule(bounds, 1, ChainOutlook(chain), epoch_hours=1.0)
        rho, reading = schedule.rho_for_epoch(0, datetime.now(UTC))
    finally:
        chain.close()
    print(
        json.dumps(
            {
                "rho": round(rho, 4),
                "reading": reading.to_dict() if reading else None,
                "fallback": schedule.last_event.to_dict() if schedule.last_event else None,
            },
            indent=2,
        )
    )
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
        "--providers", help="override GREENTRAINER_CARBON_PROVIDERS (e.g. gb,static)"
    )
    parser.add_argument("--rho-min", type=float, default=0.4,
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
        from .dispatch_cli import dispatch_forever

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


def add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SimConfig()
    parser.add_argument("--trace", default="gb-2020",
                        help="gb-2020, fr-2020 (shipped) or a CSV path (default %(default)s)")
    parser.add_argument("--kinds", default="short,long", help="comma list of: " + ",".join(KINDS))
    parser.add_argument("--jobs", type=int, default=defaults.n_jobs,
                        help="jobs per kind (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of the job arrivals (default %(default)s)")
    parser.add_argument("--slack-hours", type=float, default=defaults.slack_hours,
                        help="a deferrable job's deadline: arrival + this + its full-cost "
                        "duration (default %(default)s)")
    parser.add_argument("--rho-fixed", type=float, default=defaults.rho_fixed,
                        help="rho of the fixed-rho policies (default %(default)s, the paper's)")
    parser.add_argument("--rho-min", type=float, default=defaults.rho_min,
                        help="carbon-aware rho on the dirtiest grid (default %(default)s)")
    parser.add_argument("--rho-max", type=float, default=defaults.rho_max,
                        help="carbon-aware rho on the cleanest grid (default %(default)s)")
    parser.add_argument("--budget-fraction", type=float, default=defaults.budget_fraction,
                        help="CO2-budget mode: budget = this x the job's full-cost emissions "
                        "at the past week's mean intensity (default %(default)s)")
    parser.add_argument(
        "--time-model",
        default=defaults.time_model,
        choices=["fixed-slot", "compressed"],
        help="fixed-slot: an epoch keeps its full-cost slot and draws rho x power; "
        "compressed: it lasts rho x the full-cost time at full power",
    )
    parser.add_argument("--output", help="also write the markdown report to this file")


def run_simulation(args: argparse.Namespace) -> str:
    """Run the simulator as `add_simulation_arguments` configured it; returns the report."""
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(
            f"--kinds has unknown {unknown or 'empty'}; choose from {', '.join(KINDS)}"
        )
    if args.jobs <= 0:
        raise ValueError(f"--jobs must be > 0, got {args.jobs}")
    config = SimConfig(
        n_jobs=args.jobs,
        seed=args.seed,
        slack_hours=args.slack_hours,
        rho_fixed=args.rho_fixed,
        rho_min=args.rho_min,
        rho_max=args.rho_max,
        budget_fraction=args.budget_fraction,
        time_model=args.time_model,
    )
    trace = load_trace(args.trace)
    simulation = TraceSimulation(trace, config)
    began = time.perf_counter()
    results = [
        simulation.simulate(KINDS[k], progress=lambda m: print(f"... {m}", file=sys.stderr))
        for k in kinds
    ]
    report = markdown_report(trace.name, config, results, time.perf_counter() - began)
    if args.output:
        Path(args.output).write_text(report, encoding="utf-8")
    return report


def simulate_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="greentrainer simulate",
        description="Replay a carbon-intensity trace against the scheduling policies.",
    )
    add_simulation_arguments(parser)
    args = parser.parse_args(argv)
    try:
        print(run_simulation(args))
    except (SchedulerError, ValueError, OSError) as exc:
        print(f"greentrainer simulate: {exc}", file=sys.stderr)
        return 2
    return 0
