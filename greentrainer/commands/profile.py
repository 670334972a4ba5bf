"""`greentrainer profile`: print a model's per-tensor FLOPs profile and a selection at rho."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from greentrainer_carbon.rho_policy import DEFAULT_RHO
from greentrainer_core.errors import GreenTrainerError
from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm
from greentrainer_core.profile import ModelProfile, profile_model
from greentrainer_core.select import check_rho, select_tensors


def format_flops(flops: float) -> str:
    """1.23 TFLOPs style, for people."""
    for unit, scale in (("PFLOPs", 1e15), ("TFLOPs", 1e12), ("GFLOPs", 1e9), ("MFLOPs", 1e6)):
        if abs(flops) >= scale:
            return f"{flops / scale:.2f} {unit}"
    return f"{flops:.0f} FLOPs"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greentrainer profile",
        description="Profile the FLOPs of every trainable tensor and select tensors within rho.",
    )
    parser.add_argument("--model", default=SHIPPED_MODEL, help="model id, local directory or .gguf file (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per step (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per example (default: %(default)s)")
    parser.add_argument("--target-len", type=int, default=None, help="decoder length for encoder-decoder models")
    parser.add_argument(
        "--rho", type=float, default=DEFAULT_RHO, help="FLOPs budget as a fraction of full fine-tuning (default: %(default)s)"
    )
    parser.add_argument("--resolution", type=int, default=10_000, help="selector resolution T_q (default: %(default)s)")
    parser.add_argument(
        "--importance",
        type=Path,
        default=None,
        help="JSON file {tensor name: importance}; default: every tensor equally important",
    )
    parser.add_argument("--top", type=int, default=12, help="how many tensors of the profile to print (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the profile and selection to this file")
    return parser


def _print_profile(prof: ModelProfile, top: int) -> None:
    print(f"{len(prof)} trainable tensors; one step of batch {prof.shape}:")
    print(f"  forward {format_flops(prof.forward_flops)}, full fine-tuning step {format_flops(prof.full_flops)}")
    print(f"  cheapest feasible step: rho >= {prof.min_feasible_rho:.3f}")
    print(f"\n  {'#':>4}  {'tensor (output first)':<52} {'t_dw':>14} {'t_dy':>14}")
    shown = list(range(min(top, len(prof))))
    if len(prof) > top:
        shown += [len(prof) - 1]
    for k in shown:
        t = prof.tensors[k]
        if k == len(prof) - 1 and len(prof) > top:
            print(f"  {'...':>4}")
        print(f"  {k + 1:>4}  {t.name[-52:]:<52} {format_flops(t.t_dw):>14} {format_flops(t.t_dy):>14}")


def profile_main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        rho = check_rho(args.rho)
        importance = None
        if args.importance is not None:
            importance = json.loads(args.importance.read_text())
        started = time.perf_counter()
        model, _ = load_causal_lm(args.model)
        loaded = time.perf_counter()
        prof = profile_model(model, batch_size=args.batch_size, seq_len=args.seq_len, target_len=args.target_len)
        profiled = time.perf_counter()
        importance = importance or {name: 1.0 for name in prof.names}
        sel = select_tensors(prof, importance, rho=rho, resolution=args.resolution)
        selected = time.perf_counter()
    except (GreenTrainerError, OSError, json.JSONDecodeError) as exc:
        print(f"greentrainer profile: {exc}", file=sys.stderr)
        return 2
    print(f"model {args.model}: loaded in {loaded - started:.1f} s, profiled in {profiled - loaded:.2f} s\n")
    _print_profile(prof, args.top)
    print(
        f"\nselection at rho={rho}: {len(sel.names)} of {len(prof)} tensors, "
        f"{format_flops(sel.predicted_flops)} per step = {sel.predicted_flops / prof.full_flops:.3f} x full "
        f"(selected in {(selected - profiled) * 1e3:.1f} ms)"
    )
    deepest = sel.names[-1] if sel.names else "-"
    print(f"  backprop stops at {deepest}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "shape": prof.shape,
                    "forward_flops": prof.forward_flops,
                    "full_flops": prof.full_flops,
                    "tensors": [{"name": t.name, "t_dw": t.t_dw, "t_dy": t.t_dy} for t in prof.tensors],
                    "selection": {"rho": rho, "names": sel.names, "predicted_flops": sel.predicted_flops},
                },
                indent=1,
            )
        )
        print(f"  written to {args.json}")
    return 0
