"""Validation: the loss on held-out examples after every epoch, token-weighted so that it does
not depend on the batch size; early stopping once it stops improving; ROUGE on chat rows."""

import pytest
import torch

from greentrainer_core.chat import ChatRow, tokenize_chat
from greentrainer_core.config import EpochRecord, TrainConfig
from greentrainer_core.data import IGNORE_INDEX, SummaryRow, collate, tokenize_rows
from greentrainer_core.errors import TrainingConfigError
from greentrainer_core.evaluate import evaluate_rouge, no_better_for, validation_loss
from greentrainer_core.train import Trainer
from tests.core.tiny import ROWS, tiny_chat_tokenizer, tiny_llama, tiny_tokenizer


def _examples(tok, rows):
    return tokenize_rows([SummaryRow(i, s, t) for i, (s, t) in enumerate(rows)], tok,
                         max_length=32)


def test_validation_loss_is_the_token_mean_whatever_the_batch_size():
    tok, model = tiny_tokenizer(), tiny_llama(0)
    examples = _examples(tok, ROWS)
    # Reference: every example's summed token loss over all target tokens, one at a time.
    total, tokens = 0.0, 0
    with torch.no_grad():
        for example in examples:
            batch = collate([example], 0)
            logits = model(input_ids=batch["input_ids"]).logits[0, :-1]
            labels = batch["labels"][0, 1:]
            keep = labels != IGNORE_INDEX
            total += float(torch.nn.functional.cross_entropy(logits[keep], labels[keep],
                                                             reduction="sum"))
            tokens += int(keep.sum())
    for batch_size in (1, 3, 8):
        torch.testing.assert_close(validation_loss(model, examples, batch_size=batch_size,
                                                   pad_token_id=0), total / tokens)


def test_every_epoch_records_its_validation_loss_and_training_lowers_it():
    tok = tiny_tokenizer()
    config = TrainConfig(method="full", epochs=3, batch_size=4, max_length=32, lr=1e-2)
    trainer = Trainer(tiny_llama(0), tok, _examples(tok, ROWS * 2), config,
                      validation=_examples(tok, ROWS[:4]))
    records = [e for e in trainer.events() if isinstance(e, EpochRecord)]
    losses = [r.validation_loss for r in records]
    assert len(losses) == 3 and all(isinstance(x, float) for x in losses)
    assert losses[-1] < losses[0]
    assert trainer.model.training  # validation left the model in training mode


def test_early_stopping_ends_the_run_after_patience_epochs_without_improvement():
    tok = tiny_tokenizer()
    # A learning rate this high makes the loss on rows never trained on go up, not down.
    config = TrainConfig(method="full", epochs=8, batch_size=4, max_length=32, lr=0.5,
                         early_stopping_patience=2)
    trainer = Trainer(tiny_llama(0), tok, _examples(tok, ROWS[:4]), config,
                      validation=_examples(tok, ROWS[4:]))
    history = trainer.run()
    losses = [r.validation_loss for r in history]
    assert len(history) < 8, losses
    assert trainer.stopped_early()
    assert no_better_for(losses, 2) and not no_better_for(losses[:-1], 2)


def test_the_stopping_rule():
    assert not no_better_for([3.0, 2.0, 2.5], 2)
    assert no_better_for([3.0, 2.0, 2.5, 2.0], 2)  # equal is not better
    assert not no_better_for([3.0, None, 2.5, 2.0], 1)  # None neither counts nor resets
    assert no_better_for([2.0, None, 2.5], 1)


def test_early_stopping_without_validation_data_is_refused_before_training():
    tok = tiny_tokenizer()
    with pytest.raises(TrainingConfigError, match="needs validation examples"):
        Trainer(tiny_llama(0), tok, _examples(tok, ROWS), TrainConfig(early_stopping_patience=1))


def test_rouge_on_chat_rows_scores_the_last_reply():
    tok, model = tiny_chat_tokenizer(), tiny_llama(0)
    row = ChatRow(0, ({"role": "user", "content": "the cat sat on the mat"},
                      {"role": "assistant", "content": "cat sat"}))
    config = TrainConfig(method="full", epochs=30, batch_size=1, max_length=64, lr=1e-2)
    Trainer(model, tok, tokenize_chat([row], tok), config).run()
    scores = evaluate_rouge(model, tok, [row], max_length=64, max_new_tokens=3)
    assert scores.n == 1 and scores.rouge1 == pytest.approx(100.0)
