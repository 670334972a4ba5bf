"""benchmarks/accuracy.py --quick: every kind of configuration trains, is scored and reported."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.core.tiny import tiny_llama, tiny_tokenizer

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_one_row_per_configuration_with_counted_flops(tmp_path):
    model = tmp_path / "tiny-model"
    tiny_llama().save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    out = tmp_path / "accuracy"
    configs = "zero-shot,full:1e-3,gt0.5:1e-3:cap=2:hyst=0.2,lora:1e-3"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--quick", "--model", str(model),
         "--task", "asdiv", "--configs", configs, "--seeds", "0,1", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [r["config"] for r in rows] == ["zero-shot"] + [
        c for c in configs.split(",")[1:] for _ in (0, 1)]
    by = {(r["config"], r["seed"]): r for r in rows}
    assert by["full:1e-3", 0]["flops_vs_full"] == 1.0
    assert 0.3 < by["gt0.5:1e-3:cap=2:hyst=0.2", 1]["flops_vs_full"] <= 0.5 + 1e-3
    assert by["zero-shot", 0]["final_loss"] is None and by["full:1e-3", 1]["final_loss"] > 0
    assert all(0 <= r["accuracy"] <= 100 and 0 <= r["rougeL"] <= 100 for r in rows)
    report = out.with_suffix(".md").read_text()
    assert "| gt0.5:1e-3:cap=2:hyst=0.2 | 2 |" in report and "±" in report
    # --resume keeps those runs and adds only the new (config, seed)
    again = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--quick", "--model", str(model),
         "--configs", "full:1e-3,gt0.7:1e-3", "--seeds", "0", "--out", str(out), "--resume"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads(out.with_suffix(".json").read_text())
    assert resumed[:len(rows)] == rows and [r["config"] for r in resumed[len(rows):]] == ["gt0.7:1e-3"]


def test_a_bad_configuration_is_refused_before_any_model_loads(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--quick", "--model",
         str(tmp_path / "nothing-here"), "--configs", "gt:1e-4"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode != 0 and "a rho goes with GreenTrainer only" in done.stderr
