"""Outputs of a run: a full model directory (``from_pretrained``-loadable) and a delta checkpoint.

The delta stores only the tensors that were ever trained (``Trainer.ever_trained``) in one
safetensors file, with their names and the base model's name in its metadata. For a low rho it is
a fraction of the model's size; ``apply_delta`` writes it into a freshly loaded base model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from greentrainer_core.errors import GreenTrainerError
from greentrainer_core.hf_types import PreTrainedLM

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DELTA_FILE = "delta.safetensors"


@contextmanager
def _as_plain_weights(model: PreTrainedLM) -> Iterator[None]:
    """A model loaded from a GGUF file holds dequantized float weights but still carries the GGUF
    quantizer, which `save_pretrained` refuses to serialize; hide it while saving."""
    config = getattr(model, "config", None)
    quantization = getattr(config, "quantization_config", None)
    method = getattr(quantization, "quant_method", None)
    if config is None or getattr(method, "value", method) != "gguf":
        yield
        return
    quantizer = getattr(model, "hf_quantizer", None)
    model.hf_quantizer = None
    del config.quantization_config
    try:
        yield
    finally:
        model.hf_quantizer = quantizer
        config.quantization_config = quantization


def save_model(model: PreTrainedLM, tokenizer: PreTrainedTokenizerBase, directory: str | Path) -> Path:
    """Save a loadable model directory. peft LoRA adapters are merged into the weights first (so a
    plain ``from_pretrained`` loads it); other peft models (prefix tuning) are saved as adapters.
    Models loaded from GGUF files are saved with their (dequantized) float weights."""
    from peft import LoraConfig, PeftModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        if isinstance(model.peft_config[model.active_adapter], LoraConfig):
            model = model.merge_and_unload()
    with _as_plain_weights(model):
        model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_delta(
    model: torch.nn.Module, names: Iterable[str], directory: str | Path, *, base_model: str = ""
) -> Path:
    """Write the tensors ``names`` of ``model`` to ``directory/delta.safetensors``.

    Raises GreenTrainerError for names that are not parameters of the model."""
    from safetensors.torch import save_file

    params = dict(model.named_parameters())
    names = sorted(set(names))
    unknown = [n for n in names if n not in params]
    if unknown:
        raise GreenTrainerError(f"delta: unknown tensor names {unknown[:5]}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {n: params[n].detach().to("cpu").contiguous() for n in names}
    path = directory / DELTA_FILE
    save_file(tensors, str(path), metadata={"base_model": base_model, "names": json.dumps(names)})
    return path


def apply_delta(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Copy the delta's tensors into ``model`` (in place); returns their names.

    Raises GreenTrainerError when the file is missing or a tensor's name or shape does not match."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / DELTA_FILE
    if not path.is_file():
        raise GreenTrainerError(f"delta checkpoint {str(path)!r} does not exist")
    params = dict(model.named_parameters())
    applied = []
    with safe_open(str(path), framework="pt") as delta, torch.no_grad():
        for name in delta.keys():
            tensor = delta.get_tensor(name)
            if name not in params or params[name].shape != tensor.shape:
                raise GreenTrainerError(
                    f"delta tensor {name!r} {tuple(tensor.shape)} does not match the model"
                )
            params[name].copy_(tensor)
            applied.append(name)
    return applied
