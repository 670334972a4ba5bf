"""Trace one training step on fake tensors and learn what backprop costs for ANY trainable set.

This is the generic mechanism behind `profile_model`; nothing here knows an architecture.

1. The model runs one forward pass on FakeTensors (shapes only: no memory, no arithmetic, and
   the same kernels the real device would pick, e.g. the CPU flash-attention kernel) with every
   trainable parameter requiring grad. A dispatch mode records each aten op whose inputs require
   grad, and the autograd node each input came from.
2. From the autograd graph, each recorded input gets its dependency set: the trainable
   parameters it was computed from, as a bitset (a Python int, bit i = parameter i). Under a
   trainable set S an input requires grad iff its dependency set meets S: that is the rule
   autograd itself applies.
3. Each distinct op signature is re-run on fresh fake leaves under every combination of its
   live inputs requiring grad, and the FLOPs its backward executes are counted per combination.
   Autograd computes an op's input gradients from that op alone, so the backward FLOPs of a
   step with trainable set S are exactly sum over ops of cost[op][mask_S(op)].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten

from greentrainer_core.errors import ProfilingError
from greentrainer_core.flops import flop_counter, op_flops

#: A step's backward is allowed to differ from the op-level model by this share before we refuse
#: to trust the model (it never has on the architectures in tests/core/test_profile.py).
MAX_UNEXPLAINED_SHARE = 1e-3


@dataclass(frozen=True)
class OpBackwardCost:
    """One forward op whose backward may run: its live inputs and its backward cost table."""

    deps: tuple[int, ...]  # dependency bitset of each live input
    costs: tuple[int, ...]  # backward FLOPs indexed by mask (bit i set = live input i requires grad)


@dataclass(frozen=True)
class StepGraph:
    """What one traced training step tells about backprop costs."""

    names: tuple[str, ...]  # trainable parameters; bit i of a bitset is names[i]
    first_use: tuple[int, ...]  # index of the forward op that first reads each parameter (-1: unused)
    forward_flops: int
    measured_backward_flops: int  # counted during the traced backward with everything trainable
    ops: tuple[OpBackwardCost, ...]

    def backward_flops(self, trainable: int) -> int:
        """Backward FLOPs of one step when exactly the parameters in bitset `trainable` train."""
        total = 0
        for op in self.ops:
            mask = 0
            for i, dep in enumerate(op.deps):
                if dep & trainable:
                    mask |= 1 << i
            total += op.costs[mask]
        return total


class _Recorder(TorchDispatchMode):
    """Records forward ops with live inputs; counts forward and backward FLOPs."""

    def __init__(self, param_bits: Mapping[int, int]) -> None:
        # torch leaves TorchDispatchMode.__init__ unannotated; pyproject's untyped_calls_exclude
        # does not reach a call through super().
        super().__init__()  # type: ignore[no-untyped-call]
        self.param_bits = param_bits
        self.backward = False
        self.records: list[tuple[Any, tuple[Any, ...], dict[str, Any], list[tuple[int, Any]], Any]] = []
        self.first_use: dict[int, int] = {}
        self.n_ops = 0
        self.forward_flops = 0
        self.backward_flops = 0

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flops = op_flops(func, args, kwargs, out)
        if self.backward:
            self.backward_flops += flops
            return out
        self.forward_flops += flops
        flat, _ = tree_flatten((args, kwargs))
        live: list[tuple[int, Any]] = []
        for position, value in enumerate(flat):
            if not isinstance(value, torch.Tensor):
                continue
            bit = self.param_bits.get(id(value))
            if bit is not None:
                self.first_use.setdefault(bit, self.n_ops)
            if value.requires_grad:
                # The node is read now: a later in-place op may replace the tensor's grad_fn.
                live.append((position, value.grad_fn if bit is None else ("param", bit)))
        if live:
            self.records.append((func, args, kwargs, live, out))
        self.n_ops += 1
        return out


def _dependency_sets(roots: list[Any], param_bits: Mapping[int, int]) -> dict[int, tuple[Any, int]]:
    """Bitset of trainable parameters behind every autograd node reachable from `roots`.

    Returns {id(node): (node, bits)}; the node is kept so that its id stays unique.
    """
    memo: dict[int, tuple[Any, int]] = {}
    stack: list[tuple[Any, bool]] = [(root, False) for root in roots if root is not None]
    while stack:
        node, expanded = stack.pop()
        if id(node) in memo:
            continue
        children = [child for child, _ in node.next_functions if child is not None]
        if not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in memo)
            continue
        bits = 0
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) in param_bits:
            bits = 1 << param_bits[id(variable)]
        for child in children:
            bits |= memo[id(child)][1]
        memo[id(node)] = (node, bits)
    return memo


def _backward_cost_table(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], live_positions: list[int]
) -> tuple[int, ...]:
    """Backward FLOPs of `func` for every combination of its live inputs requiring grad."""
    flat, spec = tree_flatten((args, kwargs))
    costs = [0]
    for mask in range(1, 1 << len(live_positions)):
        leaves = []
        new_flat = list(flat)
        for i, position in enumerate(live_positions):
            template = flat[position]
            leaf = torch.empty_strided(
                template.shape, template.stride(), dtype=template.dtype, device=template.device
            ).requires_grad_(bool(mask >> i & 1))
            if leaf.requires_grad:
                leaves.append(leaf)
            # A clone (uncounted) so that in-place ops never write into a leaf.
            new_flat[position] = leaf.clone()
        new_args, new_kwargs = tree_unflatten(new_flat, spec)
        out = func(*new_args, **new_kwargs)
        outputs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor) and o.requires_grad]
        if not outputs:
            costs.append(0)
            continue
        with flop_counter() as counter:
            torch.autograd.grad(outputs[0], leaves, torch.ones_like(outputs[0]), allow_unused=True)
        costs.append(counter.get_total_flops())
    return tuple(costs)


def _fake_like(value: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device=device)


def trace_device(model: torch.nn.Module, device: str | torch.device | None = None) -> torch.device:
    """The device whose kernels a trace should follow: `device`, else the parameters' (meta -> CPU)."""
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    return torch.device("cpu") if device.type == "meta" else device


def trace_training_step(
    model: torch.nn.Module, inputs: Mapping[str, Any], device: str | torch.device | None = None
) -> StepGraph:
    """Trace forward + backward of `model(**inputs).loss` on fake tensors; see the module docstring.

    `inputs` give the batch shape (their values are never read). The trace follows the kernels
    of `device` (default: see `trace_device`), so a model built on the meta device can be profiled.
    Raises ProfilingError when no parameter requires grad or the model returns no loss.
    """
    named = list(model.named_parameters())
    trainable = [(name, p) for name, p in named if p.requires_grad]
    if not trainable:
        raise ProfilingError("the model has no trainable tensors (no parameter requires grad)")
    device = trace_device(model, device)
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    with fake_mode:
        fake_params = {name: _fake_like(p, device).requires_grad_(p.requires_grad) for name, p in named}
        fake_buffers = {name: _fake_like(b, device) for name, b in model.named_buffers()}
        fake_inputs = {k: _fake_like(v, device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    names = tuple(name for name, _ in trainable)
    param_bits = {id(fake_params[name]): i for i, name in enumerate(names)}
    recorder = _Recorder(param_bits)
    was_training = model.training
    model.train()
    try:
        with fake_mode, recorder, torch.enable_grad():
            output = functional_call(model, {**fake_params, **fake_buffers}, (), fake_inputs, strict=False)
            loss = getattr(output, "loss", None)
            if loss is None:
                raise ProfilingError("the model returned no loss: pass `labels` in the profiling inputs")
            recorder.backward = True
            loss.backward()
    finally:
        model.train(was_training)
    reachable = _dependency_sets([loss.grad_fn], param_bits)

    def deps_of(node: Any) -> int:
        if isinstance(node, tuple):  # ("param", bit): the parameter itself
            bit: int = node[1]
            return 1 << bit
        entry = reachable.get(id(node))
        return entry[1] if entry is not None else 0

    ops: list[OpBackwardCost] = []
    tables: dict[Any, tuple[int, ...]] = {}
    with fake_mode, torch.enable_grad():
        for func, args, kwargs, live, out in recorder.records:
            if not any(
                isinstance(o, torch.Tensor) and o.grad_fn is not None and id(o.grad_fn) in reachable
                for o in tree_flatten(out)[0]
            ):
                continue  # its output never reaches the loss, so its backward never runs
            live = [(position, deps_of(node)) for position, node in live]
            live = [(position, deps) for position, deps in live if deps]
            if not live:
                continue
            positions = [position for position, _ in live]
            key = _signature(func, args, kwargs, positions)
            if key not in tables:
                tables[key] = _backward_cost_table(func, args, kwargs, positions)
            if tables[key][-1]:
                ops.append(OpBackwardCost(tuple(deps for _, deps in live), tables[key]))
    graph = StepGraph(
        names=names,
        first_use=tuple(recorder.first_use.get(i, -1) for i in range(len(names))),
        forward_flops=recorder.forward_flops,
        measured_backward_flops=recorder.backward_flops,
        ops=tuple(ops),
    )
    modelled = graph.backward_flops((1 << len(names)) - 1)
    unexplained = abs(graph.measured_backward_flops - modelled)
    if unexplained > MAX_UNEXPLAINED_SHARE * max(graph.measured_backward_flops, 1):
        raise ProfilingError(
            f"the op-level FLOPs model explains {modelled} of the {graph.measured_backward_flops} "
            "backward FLOPs PyTorch executed for this model; please report the architecture"
        )
    return graph


def _signature(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], positions: list[int]
) -> tuple[Any, tuple[object, ...], tuple[int, ...]]:
    flat, _ = tree_flatten((args, kwargs))
    parts: list[tuple[tuple[int, ...], tuple[int, ...], torch.dtype, str] | str] = []
    for value in flat:
        if isinstance(value, torch.Tensor):
            parts.append((tuple(value.shape), tuple(value.stride()), value.dtype, value.device.type))
        else:
            parts.append(repr(value))
    return (func, tuple(parts), tuple(positions))
