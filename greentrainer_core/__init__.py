"""GreenTrainer: fine-tune only the tensors that matter, within a FLOPs budget rho.

The method of "Towards Green AI in Fine-tuning Large Language Models via Adaptive
Backpropagation" (Huang et al., ICLR 2024), as a pure library (torch, transformers, numpy):

    prof = profile_model(model, batch_size=4, seq_len=256)    # per-tensor t_dw / t_dy  (3.1)
    sel = select_tensors(prof, importance, rho=0.6)            # optimal tensors in budget (3.3)
    apply_selection(model, sel.names)                          # train only those
"""

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
