"""Options of a partial update between two selections: hysteresis and the learning-rate scale.

    hysteresis   I'_k = I_k * (1 + h)   for the tensors selected now, at a re-selection, so a tensor
                                        is swapped out only for one clearly more important
                                        (a newly selected tensor trains only under the tail of the
                                        learning-rate decay, and its Adam moments start cold)
    lr scale     s = min(cap, sum_k I_k / sum_{k in S} I_k)   for the selection S, s >= 1

NB on the lr scale: with AdamW the loss decrease of one step is about lr * |g_S|_1 (the fresh-Adam
importance of the trained tensors, ``greentrainer_core.importance``), so scaling lr by the
inverse of the selection's share of the gradient mass restores full fine-tuning's first-order
progress per step. The cap keeps it from exploding when the share is small: a larger step on
fewer tensors is only safe up to a point. The share is measured over every tensor, so a
selection that scales the lr probes the whole model (one full backward per selection).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch


def sticky_importance(
    importance: Mapping[str, float], current: Iterable[str], hysteresis: float
) -> dict[str, float]:
    """``importance`` with the positive scores of ``current`` tensors raised by ``1 + hysteresis``."""
    keep = set(current)
    return {
        name: value * (1.0 + hysteresis) if name in keep and value > 0 else value
        for name, value in importance.items()
    }


def gradient_mass_share(importance: Mapping[str, float], selected: Iterable[str]) -> float:
    """The selection's share of the summed positive importance (1.0 when nothing is positive)."""
    total = sum(v for v in importance.values() if v > 0)
    if total <= 0:
        return 1.0
    return sum(max(importance.get(name, 0.0), 0.0) for name in set(selected)) / total


def lr_scale(share: float, cap: float) -> float:
    """min(cap, 1 / share), never below 1; ``cap`` 1 turns the scaling off."""
    if cap <= 1.0:
        return 1.0
    return cap if share <= 0 else max(1.0, min(cap, 1.0 / share))


def set_lr_scale(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
    base_lr: float, scale: float,
) -> None:
    """Scale every group's peak learning rate to ``base_lr * scale`` from the current step on (the
    schedule's shape is kept; the scale lives in the scheduler's state, so checkpoints keep it)."""
    step = scheduler.last_epoch
    for i, group in enumerate(optimizer.param_groups):
        scheduler.base_lrs[i] = base_lr * scale
        group["lr"] = base_lr * scale * scheduler.lr_lambdas[i](step)
