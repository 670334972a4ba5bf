"""ROUGE, FLOPs and time of full FT, LoRA, GT-0.5 and GT-0.7 on a summarization data set (paper Table 2).

Each method fine-tunes a fresh copy of the model with the same data, steps, optimizer and
accounting, then generates summaries for the test rows (greedy) and scores ROUGE-1/2/L. The
paper's claims to check: GT-0.7 within 1 ROUGE point of full fine-tuning, and better than LoRA
at equal FLOPs.

    python3 benchmarks/accuracy.py --train TRAIN.jsonl --test TEST.jsonl --steps 150 \\
        --out benchmarks/results/train_accuracy.md

The files are local JSONL/CSV/Parquet with `source` and `target` fields (``--source-field`` /
``--target-field`` to rename). On this project's 2-core CPU a method takes ~25 min at 150 steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from greentrainer_core.config import TrainConfig  # noqa: E402
from greentrainer_core.data import load_rows, tokenize_rows  # noqa: E402
from greentrainer_core.evaluate import evaluate_rouge  # noqa: E402
from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm  # noqa: E402
from greentrainer_core.train import Trainer  # noqa: E402

METHODS = {
    "full": ("full", 1.0),
    "lora": ("lora", 1.0),
    "GT-0.5": ("greentrainer", 0.5),
    "GT-0.7": ("greentrainer", 0.7),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=SHIPPED_MODEL)
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--source-field", default="source")
    p.add_argument("--target-field", default="target")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--steps", type=int, default=150, help="micro-batches of training per method")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=320)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lora-lr", type=float, default=1e-3, help="LoRA's usual, higher learning rate")
    p.add_argument("--test-limit", type=int, default=60)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--seed", type=int, default=0, help="data order and init seed of every method")
    p.add_argument("--importance-batches", type=int, default=1, help="batches the GreenTrainer probe averages")
    p.add_argument("--refresh-every", type=int, default=None,
                   help="GreenTrainer: re-rate importance and re-select every N optimizer steps")
    p.add_argument("--zero-shot", action="store_true", help="also score the base model without fine-tuning")
    p.add_argument("--out")
    args = p.parse_args(argv)
    model, tokenizer = load_causal_lm(args.model)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    train_rows = load_rows(args.train, args.source_field, args.target_field)
    test_rows = load_rows(args.test, args.source_field, args.target_field)[: args.test_limit]
    examples = tokenize_rows(train_rows, tokenizer, max_length=args.max_length, file=args.train)
    results = []
    if args.zero_shot:
        # The base model without fine-tuning: what the fine-tuning methods improve on.
        model.load_state_dict(base_state)
        scores = evaluate_rouge(model, tokenizer, test_rows, max_length=args.max_length,
                                max_new_tokens=args.max_new_tokens)
        print(f"zero-shot: ROUGE {scores}", flush=True)
        zero_shot = scores
    for label in args.methods.split(","):
        method, rho = METHODS[label]
        fresh, _ = (model, None) if method != "lora" else load_causal_lm(args.model)
        fresh.load_state_dict(base_state)
        epochs = -(-args.steps * args.batch_size // len(examples))
        config = TrainConfig(
            method=method,
            epochs=epochs,
            batch_size=args.batch_size,
            max_length=args.max_length,
            lr=args.lora_lr if method == "lora" else args.lr,
            max_steps_per_epoch=min(args.steps, -(-len(examples) // args.batch_size)),
            seed=args.seed,
            importance_batches=args.importance_batches,
            importance_every_steps=args.refresh_every,
        )
        torch.manual_seed(args.seed)
        trainer = Trainer(fresh, tokenizer, examples, config, rho=rho)
        started = time.perf_counter()
        history = trainer.run(lambda e: None)
        train_s = time.perf_counter() - started
        scores = evaluate_rouge(
            trainer.model,
            tokenizer,
            test_rows,
            max_length=args.max_length,
            max_new_tokens=args.max_new_tokens,
        )
        executed, full = sum(r.executed_flops for r in history), sum(r.full_flops for r in history)
        results.append((label, scores, executed, full, train_s))
        print(
            f"{label}: ROUGE {scores} executed {executed / 1e12:.1f} TFLOPs ({executed / full:.3f} of full) "
            f"train {train_s:.0f}s",
            flush=True,
        )
    base = next((r for r in results if r[0] == "full"), results[0])
    lines = [
        f"# Accuracy: {args.model}, {len(examples)} train rows ({args.train}), {len(test_rows)} test rows",
        "",
        f"{args.steps} micro-batches of {args.batch_size}, max length {args.max_length}, greedy decoding, "
        f"seed {args.seed}, GreenTrainer probe over {args.importance_batches} batch(es), "
        f"re-selection every {args.refresh_every or 'epoch'} steps",
        "",
        "| method | ROUGE-1/2/L | TFLOPs | FLOPs vs full | train time s | time vs full |",
        "|---|---|---|---|---|---|",
    ]
    if args.zero_shot:
        lines.append(f"| no fine-tuning | {zero_shot} | 0 | 0 | 0 | 0 |")
    for label, scores, executed, full, train_s in results:
        lines.append(
            f"| {label} | {scores} | {executed / 1e12:.1f} | {executed / full:.3f} | {train_s:.0f} | "
            f"{train_s / base[4]:.3f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
