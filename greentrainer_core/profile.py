"""Tensor FLOPs profiling (paper section 3.1): what each trainable tensor costs in one step.

For tensors in backprop order k = 1..N (k = 1 closest to the output; a tensor's place is where the
forward pass first reads it, so a tied input/output embedding sits at the bottom):

    t_dw[k]  FLOPs of computing tensor k's weight gradient (only when k is trained),
    t_dy[k]  FLOPs of bringing the activation gradient from tensor k-1 down to tensor k, with the
             non-parametric ops in between (attention core, norms, activations),

and the FLOPs of one training step with trainable set S whose deepest tensor is K are

    T(S) = T_fp + sum_{k in S} t_dw[k] + sum_{k <= K} t_dy[k]          (paper eq. 5)

NB: the deepest tensor's own t_dy counts: by this definition it is the cost of reaching it, not
of passing the gradient through it (PyTorch never computes the gradient below the deepest
trainable tensor, so the paper's "through" convention would overcount by one tensor).

The formula is exact for S = {1..K} (every tensor down to K, the sets t_dw/t_dy are measured
on) and an upper bound for other sets: a side branch (say v_proj when only q_proj below it trains)
may need no gradient at all. `ModelProfile.predict` is exact for every set: it evaluates the
traced op graph (see trace.py). The selector uses the formula, so its budget guarantee holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from greentrainer_core.errors import ProfilingError, SelectionError
from greentrainer_core.trace import StepGraph, trace_training_step


@dataclass(frozen=True)
class TensorCost:
    """FLOPs of one trainable tensor in one training step (see the module docstring)."""

    name: str
    t_dw: float
    t_dy: float


class ModelProfile:
    """Per-tensor FLOPs of one training step, output first, and the step's forward FLOPs.

    Constructible from plain numbers: `ModelProfile(tensors=[TensorCost(...)], forward_flops=...)`.
    `profile_model` also attaches the traced op graph, which makes `predict` exact for any set.
    """

    def __init__(
        self,
        tensors: Sequence[TensorCost],
        forward_flops: float,
        *,
        graph: StepGraph | None = None,
        aliases: Mapping[str, str] | None = None,
        shape: Mapping[str, int] | None = None,
    ) -> None:
        if not tensors:
            raise ProfilingError("a profile needs at least one trainable tensor")
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            raise ProfilingError("tensor names in a profile must be unique")
        for t in tensors:
            if t.t_dw < 0 or t.t_dy < 0 or not math.isfinite(t.t_dw + t.t_dy):
                raise ProfilingError(f"tensor {t.name!r} has a negative or non-finite cost")
        if forward_flops < 0:
            raise ProfilingError("forward_flops must be >= 0")
        self.tensors = list(tensors)
        self._names = names
        self.forward_flops = float(forward_flops)
        self.graph = graph
        self.shape = dict(shape or {})
        self._index = {name: k for k, name in enumerate(names)}
        self._aliases = dict(aliases or {})
        self.t_dw = np.array([t.t_dw for t in tensors], dtype=np.float64)
        self.t_dy = np.array([t.t_dy for t in tensors], dtype=np.float64)
        #: dy_to[k]: FLOPs of propagating the activation gradient from the output down to tensor k.
        self.dy_to = np.cumsum(self.t_dy)
        self.backward_flops = float(self.t_dw.sum() + self.dy_to[-1])
        self.full_flops = self.forward_flops + self.backward_flops
        if self.full_flops <= 0:
            raise ProfilingError("a training step of this model costs no FLOPs; nothing to budget")

    @property
    def names(self) -> list[str]:
        """Tensor names, output first (do not modify the returned list)."""
        return self._names

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        return (
            f"ModelProfile({len(self)} tensors, forward={self.forward_flops:.4g} FLOPs, "
            f"full step={self.full_flops:.4g} FLOPs)"
        )

    def canonical(self, names: Iterable[str], what: str = "selection") -> list[str]:
        """Map names (aliases of tied tensors allowed) to profile names; unknown names raise."""
        resolved: list[str] = []
        unknown: list[str] = []
        for name in names:
            name = self._aliases.get(name, name)
            (resolved if name in self._index else unknown).append(name)
        if unknown:
            shown = ", ".join(repr(n) for n in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise SelectionError(f"the {what} names {len(unknown)} tensor(s) the model does not have: {shown}")
        return list(dict.fromkeys(resolved))

    def indices(self, names: Iterable[str], what: str = "selection") -> np.ndarray:
        return np.array([self._index[n] for n in self.canonical(names, what)], dtype=np.int64)

    def predict_linear(self, names: Iterable[str]) -> float:
        """FLOPs of one step by the formula T_fp + sum t_dw + sum_{k <= deepest} t_dy."""
        idx = self.indices(names)
        if idx.size == 0:
            return self.forward_flops
        return float(self.forward_flops + self.t_dw[idx].sum() + self.dy_to[idx.max()])

    def predict(self, names: Iterable[str]) -> float:
        """FLOPs of one training step with exactly `names` trainable (exact when traced)."""
        if self.graph is None:
            return self.predict_linear(names)
        canonical = self.canonical(names)
        bit = {name: i for i, name in enumerate(self.graph.names)}
        trainable = 0
        for name in canonical:
            trainable |= 1 << bit[name]
        return float(self.graph.forward_flops + self.graph.backward_flops(trainable))

    def step_flops_alone(self) -> np.ndarray:
        """FLOPs of a step that trains tensor k alone, for every k."""
        return self.forward_flops + self.t_dw + self.dy_to

    @property
    def min_feasible_rho(self) -> float:
        """The smallest rho at which some single tensor can be trained."""
        return float(self.step_flops_alone().min() / self.full_flops)

    def reachable(self, rho: float) -> list[str]:
        """Tensors that some selection at this rho may contain (paper eq. 12), output first."""
        budget = rho * self.full_flops
        fits = self.step_flops_alone() <= budget * (1 + 1e-12)
        return [t.name for t, ok in zip(self.tensors, fits) if ok]


def _dummy_inputs(model: torch.nn.Module, batch_size: int, seq_len: int, target_len: int | None) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if batch_size < 1 or seq_len < 1:
        raise ProfilingError(f"batch_size and seq_len must be >= 1 (got {batch_size}, {seq_len})")
    input_ids = torch.zeros((batch_size, seq_len), dtype=torch.long)
    inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    if getattr(config, "is_encoder_decoder", False):
        inputs["labels"] = torch.zeros((batch_size, target_len or seq_len), dtype=torch.long)
    else:
        if target_len is not None:
            raise ProfilingError("target_len is for encoder-decoder models; decoder-only models use seq_len")
        inputs["labels"] = input_ids
    return inputs


def profile_model(
    model: torch.nn.Module,
    batch_size: int = 4,
    seq_len: int = 256,
    *,
    target_len: int | None = None,
    inputs: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> ModelProfile:
    """Profile every trainable tensor of a Hugging Face model for one step of this batch shape.

    Traces forward + backward once on fake tensors (no memory or arithmetic, seconds for a 135M
    model), on the device the model's parameters are on, so the kernels match a real step there.
    `inputs` overrides the dummy batch (it must contain `labels`). Seq2seq models take
    `target_len` (default: seq_len). `device` profiles for another device's kernels (default: the
    parameters' device; a model on the meta device profiles as CPU).
    Raises ProfilingError when nothing is trainable.
    """
    batch = dict(inputs) if inputs is not None else _dummy_inputs(model, batch_size, seq_len, target_len)
    graph = trace_training_step(model, batch, device)
    n = len(graph.names)
    # Backprop order: the later a tensor is first read in the forward pass, the closer it is to
    # the output. Tensors read by the same op keep their registration order reversed; unused
    # tensors (never read, so never given a gradient) go last.
    order = sorted(range(n), key=lambda i: (graph.first_use[i] if graph.first_use[i] >= 0 else -1, i), reverse=True)
    full = (1 << n) - 1
    t_dw = [0] * n
    for op in graph.ops:
        # An input that depends on one tensor alone is that tensor's weight (or a view of it).
        own: dict[int, int] = {}
        for i, dep in enumerate(op.deps):
            if dep & (dep - 1) == 0:
                own[dep.bit_length() - 1] = own.get(dep.bit_length() - 1, 0) | 1 << i
        full_mask = (1 << len(op.deps)) - 1
        for bit, input_mask in own.items():
            t_dw[bit] += op.costs[full_mask] - op.costs[full_mask & ~input_mask]
    tensors, trainable, previous = [], 0, 0
    for i in order:
        trainable |= 1 << i
        closure = graph.backward_flops(trainable)
        t_dy = closure - previous - t_dw[i]
        if t_dy < 0:
            raise ProfilingError(f"tensor {graph.names[i]!r}: backward costs are not additive (t_dy={t_dy})")
        tensors.append(TensorCost(graph.names[i], float(t_dw[i]), float(t_dy)))
        previous = closure
    if previous != graph.backward_flops(full):
        raise ProfilingError("internal error: the closure sweep does not end at the full backward")
    aliases = {}
    canonical_by_id = {id(p): name for name, p in model.named_parameters()}
    for name, p in model.named_parameters(remove_duplicate=False):
        if canonical_by_id.get(id(p), name) != name:
            aliases[name] = canonical_by_id[id(p)]
    shape = {"batch_size": int(batch["input_ids"].shape[0]), "seq_len": int(batch["input_ids"].shape[1])}
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        shape["target_len"] = int(batch["labels"].shape[1])
    return ModelProfile(tensors, graph.forward_flops, graph=graph, aliases=aliases, shape=shape)
