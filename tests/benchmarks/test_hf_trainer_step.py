"""benchmarks/hf_trainer_step.py --quick: HF Trainer and GreenTrainer step in turn on one model and
batch, and the report has every method's step times and the same loss at step 1 for both full
fine-tunings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.tiny import tiny_llama, tiny_tokenizer, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_times_every_method_on_the_same_batches(tmp_path):
    model = tmp_path / "tiny-model"
    tiny_llama().save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    data = write_jsonl(tmp_path / "rows.jsonl")
    out = tmp_path / "results" / "hf_trainer_step"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hf_trainer_step.py"), "--quick", "--model",
         str(model), "--data", str(data), "--max-length", "64", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.with_suffix(".json").read_text())
    methods = {m["name"]: m for m in record["methods"]}
    assert list(methods) == ["hf", "full", "gt0.7", "gt0.5"]
    for m in methods.values():
        assert len(m["step_s"]) == 3 and m["timed_steps"] == 2  # 1 warm-up + 2 measured
        assert all(t > 0 for t in m["step_s"]) and m["median_s"] > 0 and m["iqr_s"] >= 0
        assert m["loss_step1"] > 0
    assert methods["hf"]["vs_hf"] == methods["hf"]["vs_hf_paired"] == 1.0
    assert all(m["vs_hf"] > 0 and m["vs_hf_paired"] > 0 for m in methods.values())
    assert methods["gt0.5"]["tensors"] < methods["gt0.7"]["tensors"] <= methods["full"]["tensors"]
    check = record["loss_check"]
    assert check["agree"], check
    assert check["hf"] == pytest.approx(check["greentrainer_full"], rel=1e-3)
    report = out.with_suffix(".md").read_text()
    for name in ("HF `Trainer`", "GreenTrainer, full fine-tuning", "GreenTrainer rho 0.7",
                 "GreenTrainer rho 0.5", "load average", "Command: `OMP_NUM_THREADS=1 python3"):
        assert name in report
    # --report rewrites the same report from the JSON, without a model
    out.with_suffix(".md").unlink()
    again = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hf_trainer_step.py"), "--report", "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert out.with_suffix(".md").read_text() == report
    assert json.loads(out.with_suffix(".json").read_text()) == record


def test_bad_options_are_refused_before_any_model_loads(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hf_trainer_step.py"), "--model",
         str(tmp_path / "nothing-here"), "--rhos", "0.7,1.5", "--steps", "0"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2
    assert "--steps must be >= 1" in done.stderr and "--rhos: 1.5 is not in (0, 1)" in done.stderr
