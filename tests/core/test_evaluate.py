"""Generation and ROUGE scoring."""

import pytest

from greentrainer_core.data import SummaryRow
from greentrainer_core.errors import DataError
from greentrainer_core.evaluate import evaluate_rouge, generate_summaries, rouge
from tests.core.tiny import ROWS, tiny_llama, tiny_tokenizer


def test_rouge_is_100_for_identical_text_and_0_for_disjoint_text():
    assert rouge(["the cat sat"], ["the cat sat"]).rouge1 == pytest.approx(100)
    scores = rouge(["dog ran"], ["the cat sat"])
    assert (scores.rouge1, scores.rouge2, scores.rougeL) == (0, 0, 0)
    half = rouge(["the cat"], ["the cat sat on mat"])
    assert 0 < half.rouge2 < half.rouge1 < 100


def test_generation_returns_one_summary_per_row_within_max_new_tokens():
    tok = tiny_tokenizer()
    rows = [SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS[:5])]
    outputs = generate_summaries(
        tiny_llama(), tok, rows, max_new_tokens=3, batch_size=2, max_length=32
    )
    assert len(outputs) == 5
    assert all(len(o.split()) <= 3 for o in outputs)
    beams = generate_summaries(
        tiny_llama(), tok, rows[:2], max_new_tokens=3, num_beams=2, max_length=32
    )
    assert len(beams) == 2


def test_evaluate_rouge_scores_generated_summaries_and_rejects_empty_splits():
    tok = tiny_tokenizer()
    rows = [SummaryRow(i, s, t) for i, (s, t) in enumerate(ROWS[:3])]
    scores = evaluate_rouge(tiny_llama(), tok, rows, max_new_tokens=4, max_length=32)
    assert scores.n == 3 and 0 <= scores.rouge1 <= 100
    with pytest.raises(DataError, match="at least one test row"):
        evaluate_rouge(tiny_llama(), tok, [])
