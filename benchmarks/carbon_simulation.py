"""Replay a year of GB and FR grid carbon intensity (2020) against the scheduling policies.

    python3 benchmarks/carbon_simulation.py [--jobs 1000] [--traces gb,fr]

Runs the production policy / window code through greentrainer_carbon.simulator (the same code
as `greentrainer simulate`) for both time models; writes
benchmarks/results/carbon_simulation_<gb|fr>.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greentrainer.commands.simulate import add_simulation_arguments, run_simulation  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TIME_MODEL_NOTES = {
    "fixed-slot": (
        "Primary model: each epoch keeps its full-cost wall-clock slot and draws rho x the full "
        "power over it (energy ~ rho x full; the GPU's freed share serves other work)."
    ),
    "compressed": (
        "Second model: an epoch at rho lasts rho x the full-cost time at full power. Back-to-back "
        "epochs with the same mean rho then span the same interval at the same power, so (c) "
        "equals (b) by construction; only pausing (d-pause) lets carbon-aware rho pay off."
    ),
}


def demote(markdown: str) -> str:
    """Every heading one level down, so two reports nest under one title."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.split("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_simulation_arguments(parser)
    parser.add_argument("--traces", default="gb,fr", help="comma list of gb, fr")
    parser.set_defaults(jobs=1000)
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for short in [t.strip() for t in args.traces.split(",") if t.strip()]:
        parts = [f"# Carbon simulation results: {short.upper()} 2020\n"]
        for model in ("fixed-slot", "compressed"):
            run = argparse.Namespace(
                **{**vars(args), "trace": f"{short}-2020", "time_model": model, "output": None}
            )
            report = demote(run_simulation(run))
            title, _, body = report.partition("\n")
            parts.append(f"{title}\n\n{TIME_MODEL_NOTES[model]}\n{body}")
        text = "\n".join(parts)
        path = RESULTS / f"carbon_simulation_{short}.md"
        path.write_text(text, encoding="utf-8")
        print(text)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
