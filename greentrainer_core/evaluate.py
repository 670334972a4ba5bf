"""Evaluation: generate summaries for a test split and score them with ROUGE-1/2/L (rouge-score);
the loss on a validation split; early stopping's rule.

Decoder-only models continue the training prompt ``"[source] TL;DR:"`` (left-padded batches);
encoder-decoder models get ``"summarize: [source]"``. Scores are F-measures averaged over the
examples, times 100, as in the paper's tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from greentrainer_core.chat import ChatRow, chat_prompt_ids
from greentrainer_core.data import (
    IGNORE_INDEX,
    T5_PROMPT_PREFIX,
    Example,
    SummaryRow,
    collate,
    decoder_prompt_ids,
)
from greentrainer_core.errors import DataError
from greentrainer_core.hf_types import PreTrainedLM

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class RougeScores:
    rouge1: float
    rouge2: float
    rougeL: float
    n: int

    def __str__(self) -> str:
        return f"{self.rouge1:.1f}/{self.rouge2:.1f}/{self.rougeL:.1f}"


def rouge(predictions: Sequence[str], references: Sequence[str]) -> RougeScores:
    """Mean ROUGE-1/2/L F-measures (x100) of paired predictions and references (Porter stemming)."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references) or not references:
        raise DataError(f"rouge: {len(predictions)} predictions for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for prediction, reference in zip(predictions, references, strict=True):
        for key, score in scorer.score(reference, prediction).items():
            totals[key] += score.fmeasure
    n = len(references)
    return RougeScores(
        100 * totals["rouge1"] / n, 100 * totals["rouge2"] / n, 100 * totals["rougeL"] / n, n
    )


@torch.no_grad()
def generate_summaries(
    model: PreTrainedLM,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[SummaryRow | ChatRow],
    *,
    max_length: int = 512,
    max_new_tokens: int = 64,
    num_beams: int = 1,
    batch_size: int = 8,
) -> list[str]:
    """Generate one summary per row (greedy when ``num_beams`` is 1). Sources are truncated so that
    prompt + ``max_new_tokens`` fits ``max_length``; a chat row continues its conversation
    before the last reply (keeping its end when it is too long)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    encoder_decoder = bool(model.config.is_encoder_decoder)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    outputs: list[str] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        prompts = []
        for row in chunk:
            if isinstance(row, ChatRow):
                ids = chat_prompt_ids(tokenizer, row)[-max(1, max_length - max_new_tokens):]
            elif encoder_decoder:
                ids = tokenizer(T5_PROMPT_PREFIX + row.source, add_special_tokens=True)[
                    "input_ids"
                ][:max_length]
            else:
                source = tokenizer(row.source, add_special_tokens=False)["input_ids"]
                room = max(1, max_length - max_new_tokens - len(decoder_prompt_ids(tokenizer, [])))
                ids = decoder_prompt_ids(tokenizer, source[:room])
            prompts.append(ids)
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for i, p in enumerate(prompts):  # left padding: generation continues right after the prompt
            if encoder_decoder:
                input_ids[i, : len(p)], mask[i, : len(p)] = torch.tensor(p), 1
            else:
                input_ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.tensor(p), 1
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = generated if encoder_decoder else generated[:, width:]
        outputs += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    model.train(was_training)
    return outputs


def evaluate_rouge(
    model: PreTrainedLM,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[SummaryRow | ChatRow],
    **generate_kwargs: Any,
) -> RougeScores:
    """Generate for ``rows`` (see ``generate_summaries`` for the options) and score against
    targets (a chat row's: its last reply)."""
    if not rows:
        raise DataError("evaluation needs at least one test row")
    predictions = generate_summaries(model, tokenizer, rows, **generate_kwargs)
    return rouge(predictions, [r.target if isinstance(r, SummaryRow) else r.reply for r in rows])


@torch.no_grad()
def validation_loss(
    model: PreTrainedLM,
    examples: Sequence[Example],
    *,
    batch_size: int,
    pad_token_id: int,
    max_width: int | None = None,
    max_label_width: int | None = None,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> float:
    """The mean per-token loss of ``model`` on ``examples`` (every example, in file order).

    Each batch's mean loss is weighted by the tokens it is taken over (decoder-only models
    predict labels[1:] from the positions before them), so the result does not depend on the
    batch size. NB: these forward passes are not in an epoch's FLOPs (training FLOPs only), but
    their energy is in its measurement."""
    if not examples:
        raise DataError("validation needs at least one example")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_token_id,
                        max_width=max_width, max_label_width=max_label_width)
        labels = batch["labels"]
        counted = labels if model.config.is_encoder_decoder else labels[:, 1:]
        n = int((counted != IGNORE_INDEX).sum())
        if n == 0:
            continue
        with autocast():
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        total, tokens = total + float(loss) * n, tokens + n
    model.train(was_training)
    if tokens == 0:
        raise DataError("the validation examples have no target tokens")
    return total / tokens


def no_better_for(losses: Sequence[float | None], patience: int) -> bool:
    """Early stopping: whether the last ``patience`` validation losses are all above the best
    one before them (None: an epoch without validation, which neither counts nor resets)."""
    seen = [loss for loss in losses if loss is not None]
    if len(seen) <= patience:
        return False
    return min(seen[-patience:]) >= min(seen[:-patience])
