"""The Trainer's checkpoint file: written atomically, with every random generator's state."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from greentrainer_core.errors import disk_full_cause


def rng_state() -> dict[str, Any]:
    """The state of every random generator a run draws from (torch, Python, numpy, CUDA)."""
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomically(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` through a temporary file, flushed to disk, renamed into place.
    A failed write leaves neither a partial checkpoint nor the temporary file.

    Raises OSError (errno ENOSPC, ``filename`` the checkpoint's path) when the disk is full."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())  # NB: a rename of unsynced data can survive a crash as an empty file
        tmp.replace(path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if disk_full_cause(exc) is not None:  # torch reports a failed write as a RuntimeError with no errno
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
