"""Tensor importance by one probing optimizer step (paper section 3.2, eq. 10).

    I_k = -sum_i dw_i * dL/dw_i      with dw = w(t+1) - w(t) from one optimizer step and the
                                      gradient taken at w(t), summed over tensor k's elements
    Î_k = I_k / max_j |I_j|

Which step ``dw`` is (``metric``):
- ``"adam"`` (the default): the first step of a fresh AdamW, computed in closed form. Its bias
  corrected moments are m = g and v = g^2, so dw = -lr * (g / (|g| + eps) + wd * w) and
      I_k = lr * sum_i (g_i^2 / (|g_i| + eps) + wd * w_i * g_i)        (about lr * |g_k|_1)
  It depends on the gradient and the weights only, so tensors trained for epochs and tensors
  never trained are rated on one scale at every epoch.
- ``"optimizer"``: a real step of the training optimizer on its current state, restored after.
  At epoch 0 (no state) it equals ``"adam"``; at a re-selection the trained tensors have large
  second moments and get damped steps while untrained ones get a full sign step, so the
  selection drifts towards tensors that were not trained. Kept for the ablation only.

Differences of the ``"optimizer"`` probe from the paper's public code, all deliberate:
- the gradient is the one at w(t) (it is what the optimizer step consumed), not a second one after
  the step;
- the optimizer state (AdamW moments and step counts) of the probed tensors is restored bit-exactly,
  and tensors that had no state lose the state the probe created, so probing never advances the
  optimizer; the learning-rate scheduler is not stepped;
- one copy of the probed weights and of their optimizer state is kept (not four copies of the
  whole model): on the accelerator when it has room for it (a host round trip of a 1.7B model's
  weights costs seconds per probe on an H200), else on the host; and only of the tensors that the
  budget can reach: the probing backward is
  early-stopped at the depth the budget can never reach (eq. 12, ``ModelProfile.reachable``), so
  deeper tensors get no gradient and cost neither memory nor time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from greentrainer_core.errors import GreenTrainerError

LossFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]

#: The importance metrics ``tensor_importance`` accepts (see the module docstring).
IMPORTANCE_METRICS = ("adam", "optimizer")


def _snapshot_place(
    optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter]
) -> torch.device:
    """Where the probe keeps its copies: the accelerator when the copies fit in its free memory
    with a margin, else the host."""
    device = params[0].device if params else torch.device("cpu")
    if device.type != "cuda":
        return torch.device("cpu")
    tensors = list(params) + [
        v for p in params for v in (optimizer.state.get(p) or {}).values() if torch.is_tensor(v)
    ]
    need = sum(t.numel() * t.element_size() for t in tensors)
    free, _ = torch.cuda.mem_get_info(device)
    return device if 1.25 * need + 2**30 <= free else torch.device("cpu")


def _snapshot_state(
    optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], place: torch.device
) -> dict[int, dict[str, Any] | None]:
    """Copies, on ``place``, of the optimizer state of ``params`` (None where it holds none)."""
    saved: dict[int, dict[str, Any] | None] = {}
    for p in params:
        state = optimizer.state.get(p)
        if not state:
            saved[id(p)] = None
            continue
        saved[id(p)] = {
            k: (v.detach().to(place, copy=True) if torch.is_tensor(v) else v)
            for k, v in state.items()
        }
    return saved


def _restore_state(
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    saved: dict[int, dict[str, Any] | None],
) -> None:
    for p in params:
        before = saved[id(p)]
        if before is None:
            optimizer.state.pop(p, None)
            continue
        state = optimizer.state[p]
        for key in list(state):
            if key not in before:
                del state[key]
        for key, value in before.items():
            if torch.is_tensor(value) and torch.is_tensor(state.get(key)):
                state[key].copy_(value)
            else:
                state[key] = value.clone() if torch.is_tensor(value) else value


def tensor_importance(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[dict[str, torch.Tensor]],
    loss_fn: LossFn,
    *,
    names: Iterable[str] | None = None,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
    metric: str = "adam",
) -> dict[str, float]:
    """Importance of every tensor in ``names`` (default: all), scaled by the largest magnitude.

    The gradient is averaged over ``batches`` (several small batches reduce the noise of one).
    On return the model's weights, the optimizer's state and every parameter's ``requires_grad``
    flag are exactly as before, and all ``.grad`` fields are None. ``optimizer`` must hold the
    probed parameters (it is the optimizer the training uses, so the probe step is a real one).

    With ``metric="adam"`` the optimizer is only read (its groups' lr, weight decay and eps).

    Raises GreenTrainerError when ``batches`` is empty, a name is not a parameter of the model or
    ``metric`` is not one of IMPORTANCE_METRICS.
    """
    if metric not in IMPORTANCE_METRICS:
        raise GreenTrainerError(f"importance: metric {metric!r} is not one of {IMPORTANCE_METRICS}")
    params = dict(model.named_parameters())
    probe = list(params) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in probe if n not in params]
    if unknown:
        raise GreenTrainerError(f"importance: unknown tensor names {unknown[:5]}")
    if not probe:  # nothing to rate (e.g. rho below every tensor's cost): no backward to run
        return {}
    probed = [params[n] for n in probe]
    flags = {n: p.requires_grad for n, p in params.items()}
    for n, p in params.items():  # autograd stops below the deepest probed tensor (eq. 12)
        p.requires_grad_(n in set(probe))
        p.grad = None
    try:
        count = 0
        for batch in batches:
            with autocast():
                loss = loss_fn(batch)
            loss.backward()
            count += 1
        if count == 0:
            raise GreenTrainerError("importance: no batches to probe with")
        grads = []
        for p in probed:
            if p.grad is not None and count > 1:
                p.grad.div_(count)
            grads.append(p.grad)
        if metric == "adam":
            return _normalised(_fresh_adam_scores(optimizer, probe, probed, grads))
        place = _snapshot_place(optimizer, probed)
        weights = [p.detach().to(place, copy=True) for p in probed]
        state = _snapshot_state(optimizer, probed, place)
        with torch.no_grad():
            optimizer.step()
            scores: dict[str, float] = {}
            for name, p, g, w in zip(probe, probed, grads, weights, strict=True):
                if g is None:  # not on the loss's path (e.g. an unused embedding row set)
                    scores[name] = 0.0
                    continue
                w_t = w.to(p.device)
                scores[name] = -float(((p.detach().float() - w_t.float()) * g.float()).sum())
                p.copy_(w_t)
        _restore_state(optimizer, probed, state)
    finally:
        for n, p in params.items():
            p.grad = None
            p.requires_grad_(flags[n])
    return _normalised(scores)


def _normalised(scores: dict[str, float]) -> dict[str, float]:
    scale = max((abs(v) for v in scores.values()), default=0.0)
    return {n: (v / scale if scale > 0 else 0.0) for n, v in scores.items()}


@torch.no_grad()
def _fresh_adam_scores(
    optimizer: torch.optim.Optimizer,
    names: list[str],
    params: list[torch.nn.Parameter],
    grads: list[torch.Tensor | None],
) -> dict[str, float]:
    """-sum(dw * g) of a fresh AdamW's first step, per tensor (hyperparameters from its group)."""
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    scores: dict[str, float] = {}
    for name, p, g in zip(names, params, grads, strict=True):
        if g is None:  # not on the loss's path
            scores[name] = 0.0
            continue
        group = group_of.get(id(p), optimizer.defaults)
        lr, wd = float(group.get("lr", 1.0)), float(group.get("weight_decay", 0.0))
        eps = float(group.get("eps", 1e-8))
        g32 = g.float()
        score = (g32 * g32 / (g32.abs() + eps)).sum()
        if wd:
            score = score + wd * (p.detach().float() * g32).sum()
        scores[name] = lr * float(score)
    return scores
