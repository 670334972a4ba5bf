"""Benchmark: profiling time and tensor-selection time (issue: core part 1).

Prints two tables:
1. profiling time for SmolLM2-135M (the shipped model, real weights) and for OPT-2.7B built on the
   meta device (the paper's model: no weights needed, the trace only uses shapes);
2. selector time on OPT-2.7B's real profile (N tensors as profiled) at resolutions 1e3, 1e4, 1e5
   and several rho, with the objective relative to the finest resolution.

Run: python3 benchmarks/profile_select.py [--skip-smollm2] [--out benchmarks/results/profile_select.md]
Times are medians over repeats on one CPU core (numpy's selector is single-threaded).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import transformers as tf

from greentrainer_core import profile_model, select_tensors
from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def opt_2_7b_on_meta() -> torch.nn.Module:
    config = tf.OPTConfig(
        vocab_size=50272, hidden_size=2560, num_hidden_layers=32, ffn_dim=10240,
        num_attention_heads=32, max_position_embeddings=2048, word_embed_proj_dim=2560,
    )
    with torch.device("meta"):
        return tf.OPTForCausalLM(config)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = ["## Profiling time", ""]
    lines += ["| model | tensors | batch x seq | profile time (s) | forward / full |", "|---|---|---|---|---|"]
    if not args.skip_smollm2:
        model, _ = load_causal_lm(SHIPPED_MODEL)
        t = _median_time(lambda: profile_model(model, batch_size=4, seq_len=256), 3)
        prof = profile_model(model, batch_size=4, seq_len=256)
        ratio = prof.forward_flops / prof.full_flops
        lines.append(f"| SmolLM2-135M (real weights) | {len(prof)} | 4 x 256 | {t:.2f} | {ratio:.3f} |")
        del model
    opt = opt_2_7b_on_meta()
    t = _median_time(lambda: profile_model(opt, batch_size=4, seq_len=512), 1)
    prof = profile_model(opt, batch_size=4, seq_len=512)
    ratio = prof.forward_flops / prof.full_flops
    lines.append(f"| OPT-2.7B (meta device) | {len(prof)} | 4 x 512 | {t:.2f} | {ratio:.3f} |")

    rng = np.random.default_rng(0)
    importance = {name: float(v) for name, v in zip(prof.names, np.abs(rng.normal(size=len(prof))))}
    lines += ["", f"## Selector time, OPT-2.7B profile (N = {len(prof)} tensors), one core", ""]
    lines += ["| rho | resolution | time (ms) | objective / objective at 1e5 | predicted FLOPs / budget |"]
    lines += ["|---|---|---|---|---|"]
    for rho in (0.4, 0.5, 0.6, 0.7, 1.0):
        finest = select_tensors(prof, importance, rho, 100_000).objective
        for resolution in (1_000, 10_000, 100_000):
            sel = select_tensors(prof, importance, rho, resolution)
            t = _median_time(lambda: select_tensors(prof, importance, rho, resolution), 15)
            lines.append(
                f"| {rho} | {resolution:,} | {t * 1e3:.2f} | {sel.objective / finest:.4f} | "
                f"{sel.predicted_flops / sel.budget_flops:.4f} |"
            )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
