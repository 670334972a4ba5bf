"""`greentrainer simulate`: replay a carbon-intensity trace through production's decision engine."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.errors import SchedulerError
from greentrainer_carbon.report import Row, markdown_report, rows_of
from greentrainer_carbon.simulator import (
    FORECASTS,
    KINDS,
    POLICIES,
    SimConfig,
    TraceSimulation,
    summarise,
)
from greentrainer_carbon.trace_data import load_trace


def _names(text: str, known: tuple[str, ...], option: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"{option} has unknown {unknown or 'empty'}; choose from "
                         f"{', '.join(known)}")
    return names


def _target(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "quantile") else float(text)


def add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    defaults, energy = SimConfig(), EnergyModel()
    parser.add_argument("--trace", default="gb-2020",
                        help="gb-2020, fr-2020 (shipped) or a CSV file: a timestamp column and a "
                        "gCO2/kWh column, rows every 15, 30 or 60 minutes (docs/scheduler.md) "
                        "(default %(default)s)")
    parser.add_argument("--kinds", default="short,long",
                        help="job kinds: short (3 x 1 h), long (12 x 2 h) (default %(default)s)")
    parser.add_argument("--forecasts", default="history,provider,oracle",
                        help="history (the provider gives none: the recorded past), provider "
                        "(48-h forecast with error), oracle (default %(default)s)")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help="full, fixed, window, carbon_aware, both, budget (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=defaults.n_jobs,
                        help="jobs per kind (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of the job arrivals and provider errors (default %(default)s)")
    parser.add_argument("--slack-hours", type=float, default=defaults.slack_hours,
                        help="a job's deadline: arrival + this + its full-cost duration "
                        "(default %(default)s)")
    parser.add_argument("--rho-fixed", type=float, default=defaults.rho_fixed,
                        help="rho of the fixed policies (default %(default)s)")
    parser.add_argument("--rho-min", type=float, default=defaults.rho_min,
                        help="carbon-aware rho on the dirtiest grid (default %(default)s)")
    parser.add_argument("--rho-max", type=float, default=defaults.rho_max,
                        help="carbon-aware rho on the cleanest grid (default %(default)s)")
    parser.add_argument("--rho-target", type=_target, default=defaults.rho_target,
                        help="the carbon-aware mean rho, or 'quantile' for the quantile map "
                        "(default %(default)s)")
    parser.add_argument("--budget-fraction", type=float, default=defaults.budget_fraction,
                        help="CO2-budget policy: budget = this x the job's full-cost emissions "
                        "at the past week's mean intensity (default %(default)s)")
    parser.add_argument("--host-w", type=float, default=energy.host_w,
                        help="energy model: host power while a job holds its slot, W "
                        "(default %(default)s)")
    parser.add_argument("--compute-w", type=float, default=energy.compute_w,
                        help="energy model: power on top while computing, W (default %(default)s)")
    parser.add_argument("--overhead-s", type=float, default=energy.overhead_s,
                        help="energy model: per-epoch seconds that do not shrink with rho "
                        "(default %(default)s)")
    parser.add_argument("--resume-s", type=float, default=energy.resume_s,
                        help="energy model: seconds of loading at every start (default %(default)s)")
    parser.add_argument("--output", help="also write the markdown report to this file")
    parser.add_argument("--json", help="also write the rows as JSON to this file")


def run_simulation(args: argparse.Namespace) -> tuple[str, list[Row]]:
    """Run the simulator as `add_simulation_arguments` configured it; (report, rows)."""
    kinds = [KINDS[k] for k in _names(args.kinds, tuple(KINDS), "--kinds")]
    forecasts = _names(args.forecasts, FORECASTS, "--forecasts")
    policies = _names(args.policies, (*POLICIES, "budget"), "--policies")
    if "full" not in policies:
        policies.insert(0, "full")  # the counterfactual every saving is measured against
    config = SimConfig(n_jobs=args.jobs, seed=args.seed, slack_hours=args.slack_hours,
                       rho_fixed=args.rho_fixed, rho_min=args.rho_min, rho_max=args.rho_max,
                       rho_target=args.rho_target, budget_fraction=args.budget_fraction,
                       energy=EnergyModel(host_w=args.host_w, compute_w=args.compute_w,
                                          overhead_s=args.overhead_s, resume_s=args.resume_s))
    trace, filled = load_trace(args.trace).filled()
    simulation = TraceSimulation(trace, config)
    began = time.perf_counter()
    rows: list[Row] = []
    for kind in kinds:
        for forecast in forecasts:
            print(f"... {trace.name}: {kind.name} jobs, {forecast} forecast", file=sys.stderr)
            outcomes = simulation.run(kind, forecast, tuple(policies))
            rows += rows_of(kind, forecast, config, summarise(outcomes))
    report = markdown_report(trace.name, config, kinds, rows, time.perf_counter() - began)
    if filled:
        report += (f"\nThe trace had {filled} missing 30-minute slot(s) of {trace.n_slots}; they "
                   "were filled by linear interpolation between their neighbours.\n")
    if args.output:
        Path(args.output).write_text(report, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_json() for r in rows], indent=1),
                                   encoding="utf-8")
    return report, rows


def simulate_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="greentrainer simulate",
        description="Replay a carbon-intensity trace through the production scheduler's "
        "decision engine: CO2 saved against full fine-tuning started at once, per policy.",
    )
    add_simulation_arguments(parser)
    args = parser.parse_args(argv)
    try:
        report, _ = run_simulation(args)
    except (SchedulerError, ValueError, OSError) as exc:
        print(f"greentrainer simulate: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0
