"""Data loading and tokenization: prompt formats, loss masking, truncation, clear errors."""

import json

import pandas as pd
import pytest

from greentrainer_core.data import (
    IGNORE_INDEX,
    SummaryRow,
    collate,
    epoch_order,
    load_examples,
    load_rows,
    tokenize_rows,
)
from greentrainer_core.errors import DataError
from tests.core.tiny import ROWS, tiny_tokenizer, write_jsonl


def test_decoder_prompt_is_source_tldr_then_target_and_loss_covers_only_target(tmp_path):
    tok = tiny_tokenizer()
    [example] = load_examples(write_jsonl(tmp_path / "d.jsonl", ROWS[:1]), tok, max_length=64)
    text = tok.decode(example.input_ids)
    assert text == "<s> the cat sat on the mat all day TL ; DR : cat sat on mat </s>"
    target = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX]
    assert tok.decode(target) == "cat sat on mat </s>"


def test_t5_format_prefixes_summarize_and_labels_are_the_target():
    tok = tiny_tokenizer()
    [example] = tokenize_rows(
        [SummaryRow(0, "the cat sat", "cat sat")], tok, is_encoder_decoder=True
    )
    assert tok.decode(example.input_ids).startswith(
        "<unk> : the cat sat"
    )  # "summarize" is not in the vocab
    assert tok.decode(example.labels) == "cat sat </s>"


def test_long_source_is_truncated_to_fit_max_length():
    tok = tiny_tokenizer()
    row = SummaryRow(0, " ".join(["the cat sat"] * 50), "cat sat")
    [example] = tokenize_rows([row], tok, max_length=20)
    assert len(example.input_ids) == 20
    assert (
        tok.decode([t for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX])
        == "cat sat </s>"
    )


def test_csv_and_parquet_load_like_jsonl(tmp_path):
    frame = pd.DataFrame({"doc": [s for s, _ in ROWS], "summary": [t for _, t in ROWS]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        rows = load_rows(tmp_path / name, "doc", "summary")
        assert [(r.source, r.target) for r in rows] == ROWS


def test_missing_field_names_the_field_and_the_available_ones(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", target="summary")
    with pytest.raises(DataError, match=r"no field\(s\) \['target'\].*\['source', 'summary'\]"):
        load_rows(path)


def test_empty_file_missing_file_and_unsupported_suffix_are_clear_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_rows(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        load_rows(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="unsupported format '.txt'"):
        load_rows(tmp_path / "d.txt")
    (tmp_path / "header.csv").write_text("source,target\n")
    with pytest.raises(DataError, match="has no rows|cannot be read"):
        load_rows(tmp_path / "header.csv")


def test_blank_rows_are_reported_with_their_row_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [
        {"source": "the cat", "target": "cat"},
        {"source": "  ", "target": "x"},
        {"source": "a", "target": None},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(
        DataError, match=r"2 unusable row\(s\): row 1: .*\['source'\].*; row 2: .*\['target'\]"
    ):
        load_rows(path)


def test_target_that_cannot_fit_and_text_that_tokenizes_to_nothing_are_errors():
    tok = tiny_tokenizer()
    with pytest.raises(DataError, match="row 0: target needs 11 tokens .* max_length=12"):
        tokenize_rows([SummaryRow(0, "the cat", " ".join(["cat"] * 10))], tok, max_length=12)
    with pytest.raises(DataError, match="row 3: source tokenizes to nothing"):
        tokenize_rows([SummaryRow(3, "", "cat")], tok)


def test_collate_pads_to_a_multiple_and_masks_padding():
    tok = tiny_tokenizer()
    examples = tokenize_rows([SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS[:3])], tok)
    batch = collate(examples, tok.pad_token_id, multiple_of=16)
    assert batch["input_ids"].shape == (3, 32)
    assert int(batch["attention_mask"].sum()) == sum(len(e.input_ids) for e in examples)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_epoch_order_is_reproducible_and_differs_between_epochs():
    assert epoch_order(50, 1, seed=3) == epoch_order(50, 1, seed=3)
    assert epoch_order(50, 1, seed=3) != epoch_order(50, 2, seed=3)
    assert sorted(epoch_order(50, 0, seed=3)) == list(range(50))
