"""Replay a year of GB and FR grid carbon intensity (2020) through the production decision engine.

    python3 benchmarks/carbon_simulation.py [--jobs 60] [--traces gb,fr] [--slacks 24,12,48]

Each (trace, slack) runs `greentrainer simulate` (greentrainer_carbon.simulator driving
greentrainer_carbon.planner, the code the worker and the dispatcher run) for 3-hour and
day-long jobs, with the history forecast (the provider gives none: only the recorded past),
the provider's 48-hour forecast (with error) and the oracle. Writes
benchmarks/results/carbon_simulation_<trace>.md (all slacks) and carbon_simulation.json
(every row of every run, the `greentrainer simulate --json` shape plus `trace`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greentrainer.commands.simulate import add_simulation_arguments, run_simulation  # noqa: E402
from greentrainer_carbon.simulator import POLICIES  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def demote(markdown: str) -> str:
    """Every heading one level down, so several reports nest under one title."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.split("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_simulation_arguments(parser)
    parser.add_argument("--traces", default="gb,fr", help="comma list of gb, fr")
    parser.add_argument("--slacks", default="24,12,48",
                        help="comma list of slack hours; the first is the headline")
    parser.set_defaults(jobs=60, policies=",".join((*POLICIES, "budget")))
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    every_row: list[dict[str, object]] = []
    for short in [t.strip() for t in args.traces.split(",") if t.strip()]:
        parts = [f"# Carbon simulation results: {short.upper()} 2020\n",
                 "Command: `python3 benchmarks/carbon_simulation.py` "
                 f"(--jobs {args.jobs} --slacks {args.slacks}).\n"]
        for slack in [float(s) for s in args.slacks.split(",") if s.strip()]:
            run = argparse.Namespace(**{**vars(args), "trace": f"{short}-2020",
                                        "slack_hours": slack, "output": None, "json": None})
            report, rows = run_simulation(run)
            title, _, body = demote(report).partition("\n")
            parts.append(f"{title} (slack {slack:g} h)\n{body}")
            every_row += [{"trace": f"{short}-2020", **row.to_json()} for row in rows]
        text = "\n".join(parts)
        path = RESULTS / f"carbon_simulation_{short}.md"
        path.write_text(text, encoding="utf-8")
        print(text)
        print(f"wrote {path}", file=sys.stderr)
    (RESULTS / "carbon_simulation.json").write_text(json.dumps(every_row, indent=1),
                                                    encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
