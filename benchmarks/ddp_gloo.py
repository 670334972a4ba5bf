"""Two-process data-parallel training (gloo, CPU) vs one process: time per step, and the share
of a step spent communicating.

Three runs of the same global batch (``--batch-size`` rows of ``--seq-len`` tokens, full
fine-tuning so that every gradient is reduced, FLOPs counting off): one process on the whole
batch; 2 ranks under `greentrainer_core.distributed` (each on half); one process on half the
batch (a rank's computation without communication). The communication share is
1 - t(half, one process) / t(2 ranks): what a rank spends beyond its own half of the work.

    python3 benchmarks/ddp_gloo.py --steps 4 --batch-size 4 --seq-len 128 \\
        --out benchmarks/results/ddp_gloo.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.train_flops import fixed_shape_examples  # noqa: E402
from greentrainer_core.config import StepEvent, TrainConfig  # noqa: E402
from greentrainer_core.distributed import DistributedTrainer, launch  # noqa: E402
from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm  # noqa: E402
from greentrainer_core.train import Trainer  # noqa: E402


def _step_seconds(trainer: Trainer) -> list[float]:
    return [e.wall_s for e in trainer.events() if isinstance(e, StepEvent)]


def _setup(args: argparse.Namespace, batch_size: int) -> tuple[object, object, list, TrainConfig]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tokenizer = load_causal_lm(args.model)
    examples = fixed_shape_examples(batch_size * (args.steps + 1), args.seq_len,
                                    int(model.config.vocab_size), args.seq_len // 4, seed=0)
    config = TrainConfig(method="full", epochs=1, batch_size=batch_size, max_length=args.seq_len,
                         pad_to_max_length=True, max_steps_per_epoch=args.steps + 1, lr=1e-5,
                         count_flops=False)
    return model, tokenizer, examples, config


def _rank(rank: int, world_size: int, args: argparse.Namespace, out: str) -> None:
    model, tokenizer, examples, config = _setup(args, args.batch_size)
    seconds = _step_seconds(DistributedTrainer(model, tokenizer, examples, config))  # type: ignore[arg-type]
    Path(out, f"rank-{rank}.json").write_text(json.dumps(seconds))


def _single(args: argparse.Namespace, batch_size: int) -> list[float]:
    model, tokenizer, examples, config = _setup(args, batch_size)
    return _step_seconds(Trainer(model, tokenizer, examples, config))  # type: ignore[arg-type]


def _mean_after_first(seconds: list[float]) -> float:
    rest = seconds[1:] or seconds  # the first step warms up allocators and DDP's buckets
    return sum(rest) / len(rest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=SHIPPED_MODEL)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4, help="the global batch")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    whole = _mean_after_first(_single(args, args.batch_size))
    half = _mean_after_first(_single(args, args.batch_size // 2))
    with tempfile.TemporaryDirectory() as out:
        launch(_rank, 2, args, out, backend="gloo")
        ranks = [json.loads(Path(out, f"rank-{r}.json").read_text()) for r in range(2)]
    ddp = max(_mean_after_first(seconds) for seconds in ranks)
    table = "\n".join([
        "| run | s per step | vs one process |", "|---|---|---|",
        f"| one process, global batch {args.batch_size} | {whole:.2f} | 1.00 |",
        f"| 2 gloo ranks, {args.batch_size // 2} rows each | {ddp:.2f} | {ddp / whole:.2f} |",
        f"| one process, half the batch (a rank's work) | {half:.2f} | {half / whole:.2f} |",
        "", f"Communication share of a 2-rank step: {max(0.0, 1 - half / ddp):.0%}"])
    print(table)
    if args.out:
        args.out.write_text(f"# Data-parallel training on CPU (gloo)\n\n`{' '.join(sys.argv)}` "
                            f"({args.model}, {args.threads} thread(s) per process)\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
