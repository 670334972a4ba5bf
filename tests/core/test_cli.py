"""`greentrainer train` end to end on a tiny local model directory."""

import json

from greentrainer_core.cli import train_main
from tests.core.tiny import ROWS, tiny_llama, tiny_tokenizer, write_jsonl


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
