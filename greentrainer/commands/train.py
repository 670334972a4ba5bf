"""Command-line entry points of the core: ``greentrainer train`` (``train_main``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from greentrainer.progress import bars_wanted, silence_progress_bars
from greentrainer_carbon.rho_policy import DEFAULT_RHO
from greentrainer_core.errors import GreenTrainerError, TrainingConfigError


def _rho(text: str) -> float | list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--rho {text!r}: expected a number or a comma-separated list"
        ) from None
    return values[0] if len(values) == 1 else values


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, except where there is none (None, a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _train_parser() -> argparse.ArgumentParser:
    from greentrainer_core.config import TrainConfig
    from greentrainer_core.methods import DEFAULT_METHOD, METHODS
    from greentrainer_core.models import SHIPPED_MODEL

    helps = TrainConfig.help()
    p = argparse.ArgumentParser(
        prog="greentrainer train",
        description="Fine-tune a model with GreenTrainer "
        "(or a baseline) on a local summarization data set.",
        formatter_class=_DefaultsShown,
    )
    p.add_argument("--model", default=SHIPPED_MODEL,
                   help="HF id (cached), local dir or .gguf file")
    p.add_argument(
        "--data",
        required=True,
        help="training file: .jsonl/.json/.csv/.parquet with source and target fields",
    )
    p.add_argument(
        "--test-data", help="test file of the same format: generate and report ROUGE-1/2/L"
    )
    p.add_argument("--source-field", default="source", help="input text column")
    p.add_argument("--target-field", default="target", help="output text column")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS),
                   help="what to train: " + "; ".join(f"{m.name}: {m.trains}" for m in METHODS.values()))
    p.add_argument(
        "--rho",
        type=_rho,
        default=DEFAULT_RHO,
        help="FLOPs budget per epoch: one value or a list (0.5,0.7,...)",
    )
    for name in (
        "epochs",
        "batch_size",
        "grad_accum",
        "max_length",
        "max_target_length",
        "importance_batches",
        "warmup_steps",
        "seed",
    ):
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            default=getattr(TrainConfig, name),
            help=helps[name],
        )
    p.add_argument(
        "--max-steps-per-epoch", type=int, default=None, help=helps["max_steps_per_epoch"]
    )
    p.add_argument("--lr", type=float, default=TrainConfig.lr, help=helps["lr"])
    p.add_argument("--importance-metric", default=TrainConfig.importance_metric,
                   choices=("adam", "optimizer"), help=helps["importance_metric"])
    p.add_argument("--importance-every-steps", type=int, default=None,
                   help=helps["importance_every_steps"])
    for name in ("selection_hysteresis", "partial_lr_cap"):
        p.add_argument("--" + name.replace("_", "-"), type=float,
                       default=getattr(TrainConfig, name), help=helps[name])
    p.add_argument(
        "--weight-decay", type=float, default=TrainConfig.weight_decay, help=helps["weight_decay"]
    )
    p.add_argument("--mixed-precision", default="auto", choices=("auto", "bf16", "no"),
                   help=helps["mixed_precision"])
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument(
        "--output", help="directory for the fine-tuned model (from_pretrained-loadable) and delta"
    )
    p.add_argument(
        "--eval-limit", type=int, default=None, help="evaluate on the first N test rows only"
    )
    p.add_argument("--num-beams", type=int, default=1, help="beams of the test-set generation")
    p.add_argument("--max-new-tokens", type=int, default=64,
                   help="longest generated summary of the test set, in tokens")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (the model loader's included), a line per epoch "
                   "instead; also the default when the output is not a terminal")
    return p


def _flops(value: float) -> str:
    for unit, scale in (("PF", 1e15), ("TF", 1e12), ("GF", 1e9), ("MF", 1e6)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} F"


def summary_table(history, rouge_scores=None) -> str:
    """The end-of-run table: one row per epoch and a total row (FLOPs, time, loss, ROUGE)."""
    header = (
        f"{'epoch':>5} {'rho':>5} {'tensors':>7} {'loss':>7} {'executed':>11} {'full FT':>11} "
        f"{'ratio':>6} {'time s':>8} {'ovh %':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in history:
        ratio = r.executed_flops / r.full_flops if r.full_flops else float("nan")
        overhead = 100 * r.overhead_s / r.wall_s if r.wall_s else 0.0
        lines.append(
            f"{r.epoch:>5} {r.rho:>5.2f} {r.n_selected:>7} {r.loss:>7.4f} {_flops(r.executed_flops):>11} "
            f"{_flops(r.full_flops):>11} {ratio:>6.3f} {r.wall_s:>8.1f} {overhead:>6.2f}"
        )
    executed, full = sum(r.executed_flops for r in history), sum(r.full_flops for r in history)
    lines.append(
        f"{'total':>5} {'':>5} {'':>7} {'':>7} {_flops(executed):>11} {_flops(full):>11} "
        f"{(executed / full if full else float('nan')):>6.3f} {sum(r.wall_s for r in history):>8.1f}"
    )
    if rouge_scores is not None:
        lines.append(f"ROUGE-1/2/L on {rouge_scores.n} test rows: {rouge_scores}")
    return "\n".join(lines)


def train_main(argv: Sequence[str] | None = None) -> int:
    """`greentrainer train`: returns 0 on success, 2 on bad input (with a one-line error)."""
    args = _train_parser().parse_args(argv)
    args.no_progress = not bars_wanted(args.no_progress)
    if args.no_progress:  # before _train imports the libraries that draw them
        silence_progress_bars()
    try:
        return _train(args)
    except GreenTrainerError as exc:
        print(f"greentrainer train: error: {exc}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from greentrainer_core.checkpoint import save_delta, save_model
    from greentrainer_core.config import (
        EpochRecord,
        EpochStart,
        StepEvent,
        TrainConfig,
        rho_for_epoch,
    )
    from greentrainer_core.data import load_rows, tokenize_rows
    from greentrainer_core.evaluate import evaluate_rouge
    from greentrainer_core.methods import METHODS
    from greentrainer_core.models import load_causal_lm
    from greentrainer_core.train import Trainer

    config = TrainConfig(
        method=args.method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        max_length=args.max_length,
        max_target_length=args.max_target_length,
        max_steps_per_epoch=args.max_steps_per_epoch,
        importance_batches=args.importance_batches,
        importance_metric=args.importance_metric,
        importance_every_steps=args.importance_every_steps,
        selection_hysteresis=args.selection_hysteresis,
        partial_lr_cap=args.partial_lr_cap,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
    )
    device = (
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    # What the user gave is checked before the model loads (18 s for the shipped one).
    for epoch in range(config.epochs):
        rho_for_epoch(args.rho, epoch)
    rows = load_rows(args.data, args.source_field, args.target_field)
    test_rows = (
        load_rows(args.test_data, args.source_field, args.target_field) if args.test_data else None
    )
    model, tokenizer = load_causal_lm(args.model)
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise TrainingConfigError(f"--device {device!r} is not usable: {exc}") from exc
    examples = tokenize_rows(
        rows,
        tokenizer,
        is_encoder_decoder=bool(model.config.is_encoder_decoder),
        max_length=config.max_length,
        max_target_length=config.max_target_length,
        file=args.data,
    )
    torch.manual_seed(config.seed)
    trainer = Trainer(model, tokenizer, examples, config, rho=args.rho)
    bar = tqdm(
        total=trainer.micro_batches_per_epoch() * config.epochs,
        disable=args.no_progress,
        unit="step",
    )
    started = time.perf_counter()
    for event in trainer.events():
        if isinstance(event, EpochStart):
            bar.set_description(
                f"epoch {event.epoch} rho={event.rho:.2f} {len(event.selected)} tensors"
            )
        elif isinstance(event, StepEvent):
            bar.update(1)
            bar.set_postfix(loss=f"{event.loss:.3f}")
        elif isinstance(event, EpochRecord) and args.no_progress:
            print(
                f"epoch {event.epoch}: rho={event.rho:.2f} loss={event.loss:.4f} wall={event.wall_s:.1f}s"
            )
    bar.close()
    scores = None
    if test_rows:
        rows = test_rows[: args.eval_limit] if args.eval_limit else test_rows
        scores = evaluate_rouge(
            trainer.model,
            tokenizer,
            rows,
            max_length=config.max_length,
            max_new_tokens=args.max_new_tokens,
            num_beams=args.num_beams,
        )
    if args.output:
        if METHODS[args.method].keeps == "delta":
            save_delta(trainer.model, trainer.ever_trained, args.output, base_model=args.model)
        save_model(trainer.model, tokenizer, args.output)
    print(summary_table(trainer.history, scores))
    print(
        f"method={args.method} wall={time.perf_counter() - started:.1f}s"
        + (f" output={args.output}" if args.output else "")
    )
    return 0
