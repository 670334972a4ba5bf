"""Measured step FLOPs and wall time of GreenTrainer at several rho, against full fine-tuning.

Fine-tunes the shipped SmolLM2-135M-Instruct (on CPU by default) for a fixed number of micro-batches
per rho and prints, per rho: executed step FLOPs / full-FT step FLOPs (counted with the project's
FlopCounterMode, target rho - 0.02 <= ratio <= rho), wall time per step / full-FT wall time per
step (target <= rho + 0.03), and the importance-evaluation + selection overhead as a percentage
of the measured epoch and of a realistic epoch (``--epoch-steps`` steps; target < 2%).

FLOPs and time do not depend on the text, so every batch is a fixed shape (batch x seq-len) of
token ids drawn with a fixed seed; the accuracy benchmark (accuracy.py) uses real data.

    python3 benchmarks/train_flops.py --steps 6 --out benchmarks/results/train_flops.md

On a GPU (bf16 autocast, the trainer's CUDA path) the FLOP counter's per-operator Python hooks would
dominate a step of a few milliseconds, so there the time is measured with the counter off and the
FLOPs ratio comes from one extra counted run per configuration. --random-init builds the model from
--model's config and tokenizer (a directory) with random weights, and --config-set changes that
config (a larger model of the same family): FLOPs and time do not depend on the weight values.

    python3 benchmarks/train_flops.py --device cuda --model DIR --random-init --batch-size 16 --seq-len 512
    python3 benchmarks/train_flops.py --device cuda --model DIR --random-init \
        --config-set hidden_size=2048,intermediate_size=8192,num_hidden_layers=24,num_attention_heads=32,num_key_value_heads=32
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from greentrainer_core.config import EpochRecord, EpochStart, StepEvent, TrainConfig  # noqa: E402
from greentrainer_core.data import Example  # noqa: E402
from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm  # noqa: E402
from greentrainer_core.train import Trainer  # noqa: E402


def fixed_shape_examples(
    n: int, seq_len: int, vocab: int, target_len: int, seed: int
) -> list[Example]:
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (seq_len,), generator=generator).tolist()
        examples.append(Example(ids, [-100] * (seq_len - target_len) + ids[-target_len:]))
    return examples


def measure(
    model, tokenizer, base_state, examples, method: str, rho: float, args, count: bool = True
) -> dict:
    model.load_state_dict(base_state)
    config = TrainConfig(
        method=method,
        epochs=1,
        batch_size=args.batch_size,
        max_length=args.seq_len,
        pad_to_max_length=True,
        max_steps_per_epoch=args.steps,
        lr=1e-5,
        seed=0,
        count_flops=count,
    )
    trainer = Trainer(model, tokenizer, examples, config, rho=rho)
    # The FLOPs profile is computed once per job (and batch shape), not per epoch: time it apart.
    began = time.perf_counter()
    trainer.profile(args.batch_size, args.seq_len)
    if args.device == "cuda":
        torch.cuda.synchronize()
    profile_s = time.perf_counter() - began
    steps, start, record = [], None, None
    for event in trainer.events():
        if isinstance(event, EpochStart):
            start = event
        elif isinstance(event, StepEvent):
            steps.append(event)
            print(
                f"  {method} rho={rho}: step {event.step} {event.wall_s:.4f}s "
                f"ratio={event.executed_flops / event.full_flops:.4f}",
                flush=True,
            )
        elif isinstance(event, EpochRecord):
            record = event
    timed = steps[1:] if len(steps) > 2 else steps  # the first step warms allocator and caches
    return {
        "method": method,
        "rho": rho,
        "tensors": len(start.selected),
        "step_times": [s.wall_s for s in timed],
        "flops_ratio": record.executed_flops / record.full_flops,
        "predicted_ratio": record.predicted_flops / record.full_flops
        if record.predicted_flops
        else 1.0,
        "step_s": min(s.wall_s for s in timed),
        "overhead_s": record.overhead_s,
        "profile_s": profile_s,
        "epoch_s": record.wall_s,
        "full_step_flops": start.full_step_flops,
    }


def forward_share(model, tokenizer, examples, args) -> tuple[float, float]:
    """(forward FLOPs, forward seconds) of one batch without gradients: the floor of every selection."""
    from greentrainer_core import profile_model
    from greentrainer_core.data import collate

    batch = collate(examples[: args.batch_size], tokenizer.pad_token_id or 0, pad_to=args.seq_len)
    batch = {k: v.to(args.device) for k, v in batch.items()}
    for p in model.parameters():
        p.requires_grad_(True)
    flops = profile_model(model, batch_size=args.batch_size, seq_len=args.seq_len).forward_flops
    cuda = args.device == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    times = []
    with torch.no_grad(), autocast:
        for _ in range(10 if cuda else 3):
            start = time.perf_counter()
            model(**batch)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return flops, min(times)


def build_model(args):
    """The model to measure: the shipped or named model, or random weights from its config."""
    if not args.random_init:
        return load_causal_lm(args.model)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(args.model, local_files_only=True)
    for item in filter(None, args.config_set.split(",")):
        key, value = item.split("=")
        setattr(config, key, type(getattr(config, key))(value))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=SHIPPED_MODEL)
    p.add_argument("--steps", type=int, default=4, help="micro-batches per rho and round")
    p.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds over all configurations"
    )
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--rhos", default="0.4,0.5,0.6,0.7,1.0")
    p.add_argument(
        "--epoch-steps",
        type=int,
        default=1000,
        help="steps of the 'realistic epoch' for the overhead",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--random-init", action="store_true", help="random weights from --model's config (a directory)"
    )
    p.add_argument("--config-set", default="", help="with --random-init: key=value,... config changes")
    p.add_argument(
        "--time-uncounted",
        choices=("auto", "yes", "no"),
        default="auto",
        help="time steps with the FLOP counter off (auto: on CUDA)",
    )
    p.add_argument("--out", help="also write the table (markdown) here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible to torch")
    uncounted = args.time_uncounted == "yes" or (
        args.time_uncounted == "auto" and args.device == "cuda"
    )
    model, tokenizer = build_model(args)
    model.to(args.device)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    examples = fixed_shape_examples(
        args.steps * args.batch_size, args.seq_len, model.config.vocab_size, 64, seed=0
    )
    configs = [("full", 1.0)] + [("greentrainer", float(r)) for r in args.rhos.split(",")]
    runs: dict[tuple[str, float], list[dict]] = {c: [] for c in configs}
    forward_times = []
    counted = {}
    if uncounted:  # the FLOPs ratios, from one counted run each (2 steps)
        short = argparse.Namespace(**{**vars(args), "steps": 2})
        for method, rho in configs:
            counted[(method, rho)] = measure(
                model, tokenizer, base_state, examples, method, rho, short
            )
    # Interleaved rounds: a burst of load elsewhere hits one round, not one configuration.
    for _ in range(args.rounds):
        for method, rho in configs:
            runs[(method, rho)].append(
                measure(
                    model, tokenizer, base_state, examples, method, rho, args, count=not uncounted
                )
            )
        forward_flops, forward_s = forward_share(model, tokenizer, examples, args)
        forward_times.append(forward_s)
    forward_s = min(forward_times)
    merged = []
    for config, results in runs.items():
        best = dict(results[0])
        if uncounted:
            best["flops_ratio"] = counted[config]["flops_ratio"]
        best["step_times"] = [t for r in results for t in r["step_times"]]
        best["step_s"] = min(best["step_times"])
        best["overhead_s"] = min(r["overhead_s"] for r in results)
        best["profile_s"] = min(r["profile_s"] for r in results)
        best["epoch_s"] = min(r["epoch_s"] for r in results)
        merged.append(best)
    full, rows = merged[0], merged[1:]
    if args.device == "cuda":
        where = f"{torch.cuda.get_device_name()}, bf16 autocast, torch {torch.__version__}"
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    what = f"{args.model}{' random init' if args.random_init else ''}"
    what += f" {args.config_set}" if args.config_set else ""
    lines = [
        f"# GreenTrainer step FLOPs and time vs full fine-tuning ({what}, {n_params:.0f}M parameters, {where})",
        "",
        f"batch {args.batch_size} x {args.seq_len} tokens, {args.rounds} interleaved rounds of {args.steps} steps per"
        " configuration. Step time = the minimum over steps 2..n of all rounds (the machine is shared: the minimum"
        " is the least disturbed measurement); overhead = the smaller of the rounds' importance probe + selection,"
        " paid at every epoch (and refresh); the FLOPs profile is timed apart: it is paid once per job;"
        f" full FT: {full['step_s']:.4f} s/step"
        + ("; steps timed with the FLOP counter off, FLOPs from one counted 2-step run each" if uncounted else ""),
        "",
        f"The forward pass alone (no autograd) is {forward_flops / full['full_step_flops']:.3f} of the full step's FLOPs"
        f" but {forward_s / full['step_s']:.3f} of its time: the floor of any selection's time ratio on this device.",
        "",
        "| rho | tensors | executed/full FLOPs | predicted/full | in [rho-0.02, rho] | time/full time | <= rho+0.03 "
        f"| by the median | importance+selection s | % of measured epoch | % of a {args.epoch_steps}-step epoch "
        "| profile s (once per job) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        time_ratio = r["step_s"] / full["step_s"]
        median_ratio = statistics.median(r["step_times"]) / statistics.median(full["step_times"])
        realistic = 100 * r["overhead_s"] / (r["overhead_s"] + args.epoch_steps * r["step_s"])
        lines.append(
            f"| {r['rho']:.2f} | {r['tensors']} | {r['flops_ratio']:.4f} | {r['predicted_ratio']:.4f} | "
            f"{'yes' if r['rho'] - 0.02 <= r['flops_ratio'] <= r['rho'] + 1e-9 else 'NO'} | {time_ratio:.3f} | "
            f"{'yes' if time_ratio <= r['rho'] + 0.03 else 'NO'} | {median_ratio:.3f} | {r['overhead_s']:.2f} | "
            f"{100 * r['overhead_s'] / r['epoch_s']:.1f} | {realistic:.3f} | {r['profile_s']:.2f} |"
        )
    lines += ["", "All step times (s), steps 2..n:", ""]
    lines += [
        f"- {r['method']} rho={r['rho']:.2f}: " + ", ".join(f"{t:.4g}" for t in r["step_times"])
        for r in [full, *rows]
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(
            table
            + "\n\nCommand: `python3 benchmarks/train_flops.py "
            + " ".join(argv if argv is not None else sys.argv[1:])
            + "`\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
