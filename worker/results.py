"""What a finished run scored, for the job's result: ROUGE on the test data set, and the
validation data set's loss per epoch, best epoch, early stop and ROUGE."""

from __future__ import annotations

from typing import Any

from worker.job_inputs import JobInputs


def _rouge(trainer: Any, inputs: JobInputs, rows: Any) -> dict[str, float]:
    from greentrainer_core.evaluate import evaluate_rouge

    scores = evaluate_rouge(trainer.model, inputs.tokenizer, rows,
                            max_length=inputs.config.max_length)
    return {"rouge1": scores.rouge1, "rouge2": scores.rouge2, "rougeL": scores.rougeL,
            "n": scores.n}


def evaluations(trainer: Any, inputs: JobInputs) -> dict[str, Any]:
    """``rouge`` (test set) and ``validation`` entries of the result, those that apply."""
    result: dict[str, Any] = {}
    if inputs.test_rows:
        result["rouge"] = _rouge(trainer, inputs, inputs.test_rows)
    if inputs.validation:
        losses = [r.validation_loss for r in trainer.history]
        known = [(loss, r.epoch) for loss, r in zip(losses, trainer.history, strict=True)
                 if loss is not None]
        validation: dict[str, Any] = {"loss_per_epoch": losses,
                                      "early_stopped": bool(trainer.stopped_early())}
        if known:
            validation["loss"] = known[-1][0]
            validation["best_loss"], validation["best_epoch"] = min(known)
        if inputs.validation_rows:
            validation["rouge"] = _rouge(trainer, inputs, inputs.validation_rows)
        result["validation"] = validation
    return result
