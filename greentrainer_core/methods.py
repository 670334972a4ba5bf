"""The fine-tuning methods compared in the paper, prepared for one shared training harness.

    full          every tensor trainable
    top2          the last two transformer blocks (plus the final norm) trainable ("FT-Top2")
    lora          peft LoRA adapters on the attention query and value projections
    prefix        peft prefix tuning (trainable virtual tokens)
    greentrainer  the tensors selected per epoch from importance under the FLOPs budget rho

Per-architecture knowledge (the names of the query/value projections) is a data table.
"""

from __future__ import annotations

import torch

from greentrainer_core.errors import TrainingConfigError

METHODS = ("greentrainer", "full", "top2", "lora", "prefix")
PEFT_METHODS = ("lora", "prefix")

# model_type -> module names of the attention query and value projections (LoRA targets, paper 4.1)
LORA_TARGETS: dict[str, list[str]] = {
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "opt": ["q_proj", "v_proj"],
    "bloom": ["query_key_value"],
    "gpt_neox": ["query_key_value"],
    "gpt2": ["c_attn"],
    "t5": ["q", "v"],
}


def _blocks(model: torch.nn.Module) -> tuple[str, int]:
    """(qualified name, length) of the model's stack of transformer blocks: the longest ModuleList
    (for encoder-decoders the decoder's, which is registered last)."""
    best: tuple[str, int] | None = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0:
            if best is None or len(module) >= best[1]:
                best = (name, len(module))
    if best is None:
        raise TrainingConfigError("method 'top2' needs a model with a stack of transformer blocks")
    return best


def top2_names(model: torch.nn.Module) -> list[str]:
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
    model: torch.nn.Module,
    method: str,
    *,
    lora_r: int = 8,
    lora_alpha: int = 16,
    prefix_tokens: int = 16,
) -> torch.nn.Module:
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
        raise TrainingConfigError(f"method {method!r} is not a peft method ({PEFT_METHODS})")
    return get_peft_model(model, peft_config)
