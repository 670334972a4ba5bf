"""benchmarks/accuracy.py --quick: every kind of configuration trains, is scored and reported."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.accuracy import Target, report, target_gaps, targets_section
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
    assert "## Targets (issue 21)" in report
    assert all(r["command"].startswith("python3 benchmarks/accuracy.py --quick") for r in rows)
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


def _run(config: str, seed: int, rouge_l: float, flops: float) -> dict:
    return {"config": config, "seed": seed, "rougeL": rouge_l, "flops_vs_full": flops}


def test_target_gaps_are_computed_from_the_runs_pooling_labels_with_the_same_settings():
    rows = [
        _run("full:1e-4", 0, 46.0, 1.0), _run("full:1e-4", 1, 44.0, 1.0), _run("full:1e-4", 2, 45.0, 1.0),
        # the default cap is 2: both labels are the same runs; cap=1 is another configuration
        _run("gt0.6:1e-4:cap=2", 0, 45.5, 0.6), _run("gt0.6:1e-4", 1, 42.0, 0.6),
        _run("gt0.6:1e-4:cap=1", 2, 10.0, 0.6), _run("gt0.6:1e-4", 3, 50.0, 0.6),
        _run("lora:1e-3", 0, 40.0, 0.68), _run("gt0.5:1e-4:cap=2", 0, 41.0, 0.5),
        _run("gt0.7:2e-5:cap=1", 0, 40.0, 0.7), _run("full:2e-5", 0, 43.0, 1.0),
    ]
    near, cheaper, missing = target_gaps(rows)
    assert near["candidate_labels"] == ["gt0.6:1e-4", "gt0.6:1e-4:cap=2"]
    assert near["seeds"] == [0, 1]  # the seeds both ran: full has no seed 3, the cap=1 run not counted
    assert near["per_seed_gaps"] == pytest.approx([-0.5, -2.0])
    assert near["gap"] == pytest.approx(-1.25)
    assert (near["candidate_rougeL"], near["reference_rougeL"]) == pytest.approx((43.75, 45.0))
    assert near["met"] is False  # more than 1 below
    assert cheaper["gap"] == pytest.approx(1.0) and cheaper["met"] is True
    assert missing["seeds"] == [] and missing["met"] is None  # only a cap=1 run at 2e-5
    report = targets_section(rows)
    assert "| 2 (0, 1) | 43.8 vs 45.0 | -1.2 ± 1.1 | -0.5, -2.0 | 0.600 vs 1.000 | no |" in report
    assert "| 0 (none in common) | - | not measured |" in report


def test_a_cheaper_target_fails_when_the_candidate_costs_as_much():
    rows = [_run("gt0.5:1e-4", 0, 50.0, 0.7), _run("lora:1e-3", 0, 40.0, 0.68)]
    (got,) = target_gaps(rows, (Target("at least LoRA, cheaper", "gt0.5:1e-4", "lora:1e-3", 0.0,
                                       cheaper=True),))
    assert got["gap"] == pytest.approx(10.0) and got["met"] is False


def test_the_report_lists_each_command_with_the_runs_it_added():
    def row(config: str, seed: int, **extra: str) -> dict:
        return {**_run(config, seed, 40.0, 1.0), "rouge1": 40.0, "rouge2": 5.0, "accuracy": 0.0,
                "train_s": 1.0, "final_loss": 1.0, "selected_per_epoch": [272], **extra}

    text = report([row("full:1e-4", 0), row("full:1e-4", 1, command="python3 a.py --seeds 1"),
                   row("full:1e-4", 2, command="python3 a.py --seeds 2", note="in two parts")],
                  "# header")
    assert "- command not recorded: full:1e-4 s0" in text
    assert "- `python3 a.py --seeds 1`: full:1e-4 s1" in text
    assert "- `python3 a.py --seeds 2` (in two parts): full:1e-4 s2" in text
    assert "| full:1e-4 | 3 |" in text and "## Targets (issue 21)" in text
