"""`greentrainer simulate`: replay a carbon-intensity trace against the scheduling policies."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from greentrainer_carbon.errors import SchedulerError
from greentrainer_carbon.report import markdown_report
from greentrainer_carbon.simulator import LONG_JOB, SHORT_JOB, SimConfig, TraceSimulation
from greentrainer_carbon.trace_data import load_trace

KINDS = {"short": SHORT_JOB, "long": LONG_JOB}


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
