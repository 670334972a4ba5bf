"""GreenTrainer: fine-tune only the tensors that matter, within a FLOPs budget rho.

The method of "Towards Green AI in Fine-tuning Large Language Models via Adaptive
Backpropagation" (Huang et al., ICLR 2024), as a pure library (torch, transformers, numpy):

    prof = profile_model(model, batch_size=4, seq_len=256)    # per-tensor t_dw / t_dy  (3.1)
    sel = select_tensors(prof, importance, rho=0.6)            # optimal tensors in budget (3.3)
    apply_selection(model, sel.names)                          # train only those

The names below are imported on first use (PEP 562), so that the torch-free modules
(`greentrainer_core.methods`, `.models`, `.errors`) can be imported by the service without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greentrainer_core.apply import apply_selection
    from greentrainer_core.errors import (
        DataError,
        GreenTrainerError,
        InfeasibleBudget,
        ModelLoadError,
        ProfilingError,
        SelectionError,
    )
    from greentrainer_core.flops import count_step_flops, flop_counter
    from greentrainer_core.profile import ModelProfile, TensorCost, profile_model
    from greentrainer_core.select import Selection, select_tensors

_WHERE = {
    "apply_selection": "apply",
    "DataError": "errors",
    "GreenTrainerError": "errors",
    "InfeasibleBudget": "errors",
    "ModelLoadError": "errors",
    "ProfilingError": "errors",
    "SelectionError": "errors",
    "count_step_flops": "flops",
    "flop_counter": "flops",
    "ModelProfile": "profile",
    "TensorCost": "profile",
    "profile_model": "profile",
    "Selection": "select",
    "select_tensors": "select",
}

__all__ = [
    "DataError",
    "GreenTrainerError",
    "InfeasibleBudget",
    "ModelLoadError",
    "ModelProfile",
    "ProfilingError",
    "Selection",
    "SelectionError",
    "TensorCost",
    "apply_selection",
    "count_step_flops",
    "flop_counter",
    "profile_model",
    "select_tensors",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'greentrainer_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"greentrainer_core.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
