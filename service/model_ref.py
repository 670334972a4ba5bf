"""Which model a job may name: a shipped alias, a Hugging Face id already in the local hub cache,
or a directory under one of the allowed local model dirs (the API's policy; the core's
`greentrainer_core.models` maps a name to files, and both ask it whether an id is cached).
Nothing is downloaded here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from greentrainer_core.models import SHIPPED_MODEL, in_local_cache
from service.errors import UnknownModel

# Models that ship with the project (the core resolves the alias to its files).
SHIPPED_MODELS: tuple[str, ...] = (SHIPPED_MODEL,)
DEFAULT_MODEL = SHIPPED_MODEL

_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass(frozen=True)
class ModelRef:
    name: str
    source: str  # "shipped" | "hf_cache" | "local_path"


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root.resolve()) for root in roots)


def resolve_model(name: str, *, allowed_dirs: list[Path], hf_cache_dir: Path | None) -> ModelRef:
    """The job's model reference; raises `UnknownModel` (field ``model``) for anything else."""
    if "\x00" in name:
        raise UnknownModel("model must not contain NUL characters", field="model")
    if name in SHIPPED_MODELS:
        return ModelRef(name=name, source="shipped")
    if _HF_ID.match(name) and not name.startswith((".", "/")):
        if in_local_cache(name, hf_cache_dir):
            return ModelRef(name=name, source="hf_cache")
        if not Path(name).is_absolute():
            raise UnknownModel(
                f"model {name!r} is not in the local Hugging Face cache (the server downloads "
                f"nothing); shipped models: {', '.join(SHIPPED_MODELS)}", field="model")
    path = Path(name)
    if path.is_absolute():
        resolved = path.resolve()
        if not _under(resolved, allowed_dirs):
            raise UnknownModel(f"model path {name!r} is not under an allowed model directory "
                               "(GREENTRAINER_ALLOWED_MODEL_DIRS)", field="model")
        if not (resolved / "config.json").is_file():
            raise UnknownModel(f"model path {name!r} has no config.json", field="model")
        return ModelRef(name=str(resolved), source="local_path")
    raise UnknownModel(f"unknown model {name!r}: use a shipped alias "
                       f"({', '.join(SHIPPED_MODELS)}), a Hugging Face id in the local cache, "
                       "or an absolute path under an allowed model directory", field="model")
