"""Outputs of a run: a full model directory (``from_pretrained``-loadable, in the base model's
dtype), a peft adapter, and a delta checkpoint.

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


def output_dtype(model: PreTrainedLM) -> torch.dtype:
    """The dtype a run's outputs are saved in: the base model's. A model loaded from a quantized
    GGUF file holds float32 weights dequantized from 4-6 bits, which bfloat16 (the dtype SmolLM2
    and most current LMs are published in) holds at half the size; any other model is trained in
    the dtype its checkpoint has (transformers loads that by default), which is kept."""
    quantization = getattr(getattr(model, "config", None), "quantization_config", None)
    method = getattr(quantization, "quant_method", None)
    if getattr(method, "value", method) == "gguf":
        return torch.bfloat16
    dtype: torch.dtype = next(model.parameters()).dtype
    return dtype


def _write_config_dtype(directory: Path, dtype: torch.dtype) -> None:
    """Record the saved weights' dtype in config.json: `save_pretrained` writes the in-memory
    weights' dtype there, which ``from_pretrained`` would then load the weights in."""
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config["dtype"] = str(dtype).removeprefix("torch.")
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def save_model(
    model: PreTrainedLM,
    tokenizer: PreTrainedTokenizerBase,
    directory: str | Path,
    *,
    dtype: torch.dtype | None = None,
    adapter_directory: str | Path | None = None,
) -> Path:
    """Save a ``from_pretrained``-loadable directory: weights as safetensors in ``dtype`` (default
    `output_dtype`: the base model's), config, generation config and tokenizer. The model in
    memory keeps its own dtype.

    peft models: the adapter is saved to ``adapter_directory`` (when given) first; LoRA is then
    merged into the weights (so a plain ``from_pretrained`` loads the fine-tuned model; NB: the
    merge is done in place), while prefix tuning, which cannot be merged, leaves the base
    model's weights in ``directory`` (load it with its adapter). GGUF-loaded models are saved
    with their dequantized weights."""
    from peft import LoraConfig, PeftModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dtype = dtype or output_dtype(model.get_base_model() if isinstance(model, PeftModel)
                                  else model)
    if isinstance(model, PeftModel):
        if adapter_directory is not None:
            model.save_pretrained(str(adapter_directory))
        if isinstance(model.peft_config[model.active_adapter], LoraConfig):
            model = model.merge_and_unload()
        else:
            model = model.get_base_model()
    generation = getattr(model, "generation_config", None)
    if generation is not None:  # generation stops where the tokenizer's sequences end
        for name in ("eos_token_id", "pad_token_id", "bos_token_id"):
            if getattr(generation, name, None) is None:
                setattr(generation, name, getattr(tokenizer, name, None))
    state, cast = {}, {}  # tied tensors (embeddings and lm_head) stay one tensor, saved once
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            ptr = tensor.data_ptr()
            if ptr not in cast:
                cast[ptr] = tensor.detach().to(dtype)
            tensor = cast[ptr]
        state[key] = tensor
    before = getattr(model.config, "dtype", None)
    try:
        with _as_plain_weights(model):
            model.save_pretrained(directory, state_dict=state)
    finally:
        model.config.dtype = before
    _write_config_dtype(directory, dtype)
    tokenizer.save_pretrained(directory)
    return directory


def save_delta(
    model: torch.nn.Module,
    names: Iterable[str],
    directory: str | Path,
    *,
    base_model: str = "",
    dtype: torch.dtype | None = None,
    filename: str = DELTA_FILE,
) -> Path:
    """Write the tensors ``names`` of ``model`` to ``directory/filename`` (in ``dtype``, default
    their own).

    Raises GreenTrainerError for names that are not parameters of the model."""
    from safetensors.torch import save_file

    params = dict(model.named_parameters())
    names = sorted(set(names))
    unknown = [n for n in names if n not in params]
    if unknown:
        raise GreenTrainerError(f"delta: unknown tensor names {unknown[:5]}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {n: params[n].detach().to("cpu", dtype=dtype or params[n].dtype).contiguous()
               for n in names}
    path = directory / filename
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
            params[name].copy_(tensor)  # in the model's dtype, whatever the delta's
            applied.append(name)
    return applied
