"""The fine-tuning methods compared in the paper, prepared for one shared training harness.

`METHODS` is the registry every part of the product reads (the API's validation, the CLI, the
worker's outputs, the dashboard): a method's name, what it trains, whether the FLOPs budget rho
applies to it, and what a job keeps besides the merged model. Per-architecture knowledge (the
names of the query/value projections) is a data table. Importing this module does not import
torch (the API process never loads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from greentrainer_core.errors import TrainingConfigError
from greentrainer_core.hf_types import PreTrainedLM

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Method:
    """One fine-tuning method."""

    name: str
    trains: str  # what it trains, in words (help texts, docs, the dashboard)
    takes_rho: bool  # the FLOPs budget rho chooses its trainable tensors each epoch
    peft: bool  # wrapped with peft: only the adapter's own tensors train
    keeps: Literal["delta", "adapter"]  # besides the merged model: the trained tensors, or the adapter


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("greentrainer", "the tensors selected each epoch from their importance within the "
           "FLOPs budget rho", takes_rho=True, peft=False, keeps="delta"),
    Method("full", "every tensor", takes_rho=False, peft=False, keeps="delta"),
    Method("top2", "the last two transformer blocks and the final norm (FT-Top2)",
           takes_rho=False, peft=False, keeps="delta"),
    Method("lora", "LoRA adapters on the attention query and value projections",
           takes_rho=False, peft=True, keeps="adapter"),
    Method("prefix", "prefix tuning's virtual tokens", takes_rho=False, peft=True, keeps="adapter"),
)}
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
DEFAULT_METHOD = "greentrainer"
PEFT_METHODS: tuple[str, ...] = tuple(name for name, m in METHODS.items() if m.peft)


def get_method(name: str) -> Method:
    """The registered method ``name``. Raises TrainingConfigError naming the known ones."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise TrainingConfigError(
            f"method {name!r} is not one of {', '.join(METHOD_NAMES)}") from None

# model_type -> module names of the attention query and value projections (LoRA targets, paper 4.1)
LORA_TARGETS: dict[str, list[str]] = {
    "llama": ["q_proj", "v_proj"],
    "gemma": ["q_proj", "v_proj"],
    "gemma2": ["q_proj", "v_proj"],
    "gemma3_text": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"],
    "opt": ["q_proj", "v_proj"],
    "bloom": ["query_key_value"],
    "gpt_neox": ["query_key_value"],
    "gpt2": ["c_attn"],
    "t5": ["q", "v"],
}


def _blocks(model: torch.nn.Module) -> tuple[str, int]:
    """(qualified name, length) of the model's stack of transformer blocks: the longest ModuleList
    (for encoder-decoders the decoder's, which is registered last)."""
    import torch

    best: tuple[str, int] | None = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0:
            if best is None or len(module) >= best[1]:
                best = (name, len(module))
    if best is None:
        raise TrainingConfigError("method 'top2' needs a model with a stack of transformer blocks")
    return best


def top2_names(model: PreTrainedLM) -> list[str]:
    """Names of the tensors of the last two blocks, plus 1-D tensors after the blocks (final norm).

    Input embeddings are never included, even when tied to the output layer (training them forces
    backpropagation down to the bottom of the model)."""
    stack, length = _blocks(model)
    last_two = tuple(f"{stack}.{i}." for i in range(max(length - 2, 0), length))
    embeddings = model.get_input_embeddings().weight
    names: list[str] = []
    seen_blocks = False
    for name, p in model.named_parameters():
        in_blocks = name.startswith(f"{stack}.")
        seen_blocks = seen_blocks or in_blocks
        if name.startswith(last_two) or (
            seen_blocks and not in_blocks and p.ndim == 1 and p is not embeddings
        ):
            names.append(name)
    return names


def wrap_peft(
    model: PreTrainedLM,
    method: str,
    *,
    lora_r: int = 8,
    lora_alpha: int = 16,
    prefix_tokens: int = 16,
) -> PreTrainedLM:
    """Wrap ``model`` with peft for 'lora' or 'prefix'; only the adapter tensors stay trainable.

    Raises TrainingConfigError when LoRA has no target table entry for the model's architecture."""
    from peft import LoraConfig, PrefixTuningConfig, TaskType, get_peft_model

    config = model.config
    task = TaskType.SEQ_2_SEQ_LM if config.is_encoder_decoder else TaskType.CAUSAL_LM
    peft_config: LoraConfig | PrefixTuningConfig
    if method == "lora":
        model_type = str(config.model_type)
        if model_type not in LORA_TARGETS:
            raise TrainingConfigError(
                f"method 'lora' has no query/value projection names for model_type {model_type!r}; "
                f"known: {sorted(LORA_TARGETS)}"
            )
        peft_config = LoraConfig(
            task_type=task,
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=0.0,
            target_modules=LORA_TARGETS[model_type],
        )
    elif method == "prefix":
        peft_config = PrefixTuningConfig(task_type=task, num_virtual_tokens=prefix_tokens)
    else:
        raise TrainingConfigError(f"method {method!r} is not a peft method ({', '.join(PEFT_METHODS)})")
    return get_peft_model(model, peft_config)
