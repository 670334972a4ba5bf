"""`greentrainer train` end to end on a tiny local model directory."""

import json

import pytest

from greentrainer.commands.train import train_main
from tests.core.tiny import ROWS, tiny_llama, tiny_tokenizer, write_jsonl


@pytest.fixture(autouse=True)
def _environment_restored(monkeypatch):
    """`--no-progress` sets variables in the process's environment: undo them after each test."""
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.setenv(name, "0")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def _model_dir(tmp_path):
    directory = tmp_path / "tiny-model"
    tiny_llama().save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


def test_train_command_trains_evaluates_saves_and_prints_the_summary_table(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl")
    test = write_jsonl(tmp_path / "test.jsonl", ROWS[:3])
    out = tmp_path / "out"
    code = train_main(
        [
            "--model",
            str(_model_dir(tmp_path)),
            "--data",
            str(data),
            "--test-data",
            str(test),
            "--rho",
            "0.5,0.7",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--max-length",
            "32",
            "--max-new-tokens",
            "4",
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "ROUGE-1/2/L on 3 test rows" in printed and "total" in printed
    assert (out / "delta.safetensors").is_file() and (out / "config.json").is_file()
    assert " 0.50 " in printed and " 0.70 " in printed


def test_bad_data_file_exits_2_with_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x"}) + "\n")
    code = train_main(["--model", str(_model_dir(tmp_path)), "--data", str(bad), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: data file" in err and "no field(s) ['source', 'target']" in err


@pytest.mark.parametrize("extra, expected", [
    (["--data", "{missing}"], "does not exist"),
    (["--data", "{good}", "--test-data", "{missing}"], "does not exist"),
    (["--data", "{good}", "--rho", "0.5,0.7", "--epochs", "3"], "rho"),
    (["--data", "{good}", "--rho", "1.5"], "rho"),
    (["--data", "{good}", "--partial-lr-cap", "20"], "partial_lr_cap"),
    (["--data", "{good}", "--selection-hysteresis", "-1"], "selection_hysteresis"),
])
def test_bad_input_is_reported_before_the_model_loads(tmp_path, capsys, monkeypatch, extra,
                                                      expected):
    import greentrainer_core.models as models

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(models, "load_causal_lm", never)
    good = write_jsonl(tmp_path / "good.jsonl")
    paths = {"missing": str(tmp_path / "missing.jsonl"), "good": str(good)}
    argv = ["--model", "smollm2-135m-instruct", "--no-progress"]
    argv += [arg.format(**paths) for arg in extra]
    assert train_main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("greentrainer train: error: ") and expected in last, last


def test_the_partial_update_options_reach_the_trainer(tmp_path, monkeypatch):
    import greentrainer_core.train as train_module

    seen = []

    class Spy(train_module.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.config)

    monkeypatch.setattr(train_module, "Trainer", Spy)
    argv = ["--model", str(_model_dir(tmp_path)), "--data", str(write_jsonl(tmp_path / "t.jsonl")),
            "--max-length", "32", "--no-progress", "--importance-metric", "optimizer",
            "--importance-every-steps", "1", "--selection-hysteresis", "0.25",
            "--partial-lr-cap", "2"]
    assert train_main(argv) == 0
    config = seen[0]
    assert (config.importance_metric, config.importance_every_steps) == ("optimizer", 1)
    assert (config.selection_hysteresis, config.partial_lr_cap) == (0.25, 2.0)
