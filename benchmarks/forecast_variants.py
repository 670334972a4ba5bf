"""Does a better history forecast buy more of the oracle's saving? Variants of the history-profile
forecaster (`greentrainer_carbon.forecast`), each run through the production decision engine
(`greentrainer simulate`) on arrival seeds that the reported figures do not use.

    python3 benchmarks/forecast_variants.py [--seeds 1,2] [--traces gb-2020,fr-2020] \\
        [--variants "base;tau=24;ar=1,days=42"] [--out benchmarks/results/forecast_variants]

A variant is ``name=value`` options of the forecast: ``days`` (days in the profile, 28),
``tau`` (hours the live anomaly takes to fade by 1/e, 48), ``k`` (the anomaly is the mean
residual of the last k slots, not the live slot's alone) and ``ar=1`` (the anomaly fades as the
residuals' own autocorrelation over the past ``days``, measured at each decision, instead of
exp(-h / tau)). For each (trace, seed, job kind) the table gives the policy (d) "carbon-aware rho
+ green windows" saving with the variant as a share of the oracle's (d) saving, and its points
over (a) fixed rho at once (24 h slack, 60 jobs per kind).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import greentrainer_carbon.forecaster as forecaster_module  # noqa: E402
from greentrainer.commands.simulate import simulate_main  # noqa: E402
from greentrainer_carbon import forecast  # noqa: E402

Forecast = Callable[..., np.ndarray]
PRODUCTION = forecaster_module.forecast_from_history


def variant(spec: str) -> Forecast:
    """The history forecast of one variant (``base``: production's)."""
    options = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
    unknown = set(options) - {"days", "tau", "k", "ar"}
    if unknown:
        raise SystemExit(f"variant {spec!r}: unknown option(s) {sorted(unknown)}; "
                         "use days, tau, k, ar")
    days = int(options.get("days", forecast.DEFAULT_DAYS))
    tau = float(options.get("tau", forecast.DEFAULT_TAU_HOURS))
    k, ar = int(options.get("k", 1)), options.get("ar", "0") == "1"
    if k == 1 and not ar:
        return lambda history, horizon, _days=None, _tau=None, live_slot=None: PRODUCTION(
            history, horizon, days, tau, live_slot)

    def forecast_of(history: np.ndarray, horizon: int, _days: object = None,
                    _tau: object = None, live_slot: int | None = None) -> np.ndarray:
        base = PRODUCTION(history, horizon, days, 1e-9, live_slot)  # the profile alone
        x = np.asarray(history, dtype=float)
        t = x.size - 1
        first = None if live_slot is None else live_slot - t
        span = days * forecast.SLOTS_PER_DAY if ar else k
        past = np.arange(max(0, t - span + 1), t + 1)
        profile = forecast._seasonal(x, past, np.ones_like(past), days, first)
        residual = np.nan_to_num(x[past] - profile)
        anomaly = float(np.mean(residual[-k:]))
        h = np.arange(horizon)
        if ar:
            energy = float(residual @ residual)
            fade = np.array([residual[:residual.size - i] @ residual[i:] / energy
                             if energy > 0 and i < residual.size else 0.0 for i in h])
            fade = np.clip(fade, 0.0, 1.0)
        else:
            fade = np.exp(-h * 0.5 / tau)
        out = base + anomaly * fade
        out[0] = base[0]
        return np.asarray(out)

    return forecast_of


def saved(trace: str, seed: int, forecast_name: str, policies: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as rows:
        simulate_main(["--trace", trace, "--forecasts", forecast_name, "--policies", policies,
                       "--jobs", "60", "--seed", str(seed), "--json", rows.name])
        return {f"{r['job_kind']}:{r['policy']}": r["co2_saved_pct"]
                for r in json.loads(Path(rows.name).read_text())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--traces", default="gb-2020,fr-2020")
    p.add_argument("--variants", default="base;tau=24;tau=96;days=14;days=42;k=4;ar=1",
                   help="';'-separated variants, each comma-separated options")
    p.add_argument("--out", help="write OUT.md and OUT.json")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    traces = args.traces.split(",")
    variants = [v.strip() for v in args.variants.split(";") if v.strip()]
    oracle = {(t, s): saved(t, s, "oracle", "fixed,both") for t in traces for s in seeds}
    results: dict[str, dict[str, list[float]]] = {}
    for name in variants:
        forecaster_module.forecast_from_history = variant(name)
        try:
            for t in traces:
                for s in seeds:
                    history = saved(t, s, "history", "both")
                    for kind in ("short", "long"):
                        best, fixed = oracle[t, s][f"{kind}:both"], oracle[t, s][f"{kind}:fixed"]
                        got = history[f"{kind}:both"]
                        results.setdefault(name, {})[f"{t[:2]} s{s} {kind}"] = [
                            100.0 * got / best, got - fixed]
        finally:
            forecaster_module.forecast_from_history = PRODUCTION
        print(name, {k: round(v[0], 1) for k, v in results[name].items()}, flush=True)
    cells = list(next(iter(results.values())))
    lines = ["# History-forecast variants: share of the oracle's (d) saving", "",
             f"`python3 benchmarks/forecast_variants.py --seeds {args.seeds} --traces "
             f"{args.traces}` (24 h slack, 60 jobs per kind, arrival seeds the reported figures "
             "do not use; `base` is production's forecast). Cell: (d) with the variant as % of "
             "the oracle's (d) saving, then points over (a) fixed rho at once.", "",
             "| variant | mean % | " + " | ".join(cells) + " |",
             "|---|---:|" + "---:|" * len(cells)]
    for name, cell in results.items():
        mean = float(np.mean([v[0] for v in cell.values()]))
        lines.append(f"| {name} | {mean:.1f} | " + " | ".join(
            f"{cell[c][0]:.1f} ({cell[c][1]:+.1f})" for c in cells) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out + ".md").write_text(report)
        Path(args.out + ".json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
