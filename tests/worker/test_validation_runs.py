"""A job's validation data set reaches the training: its loss after every epoch is in the
epoch rows and events, early stopping ends the job, and the result holds the validation
metrics (ROUGE included); chat data sets train and validate too."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from service.models import Dataset, JobEpoch, JobEvent, new_id
from tests.core.tiny import ROWS, tiny_chat_tokenizer, tiny_llama
from tests.worker.conftest import Bench
from tests.worker.test_runner import run


def _epoch_rows(bench: Bench, job_id: str) -> list[JobEpoch]:
    with bench.factory() as session:
        return list(session.scalars(select(JobEpoch).where(JobEpoch.job_id == job_id)
                                    .order_by(JobEpoch.epoch_index)))


def _events(bench: Bench, job_id: str, type_: str) -> list[JobEvent]:
    with bench.factory() as session:
        return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id,
                                                           JobEvent.type == type_)))


def test_validation_loss_is_recorded_per_epoch_and_summed_up_in_the_result(bench: Bench) -> None:
    job_id = bench.job(validation_dataset_id=bench.dataset_id)
    assert run(bench, job_id) == "succeeded"
    rows = _epoch_rows(bench, job_id)
    losses = [r.validation_loss for r in rows]
    assert len(losses) == 2 and all(isinstance(x, float) and x > 0 for x in losses)
    events = _events(bench, job_id, "epoch")
    assert [e.data["validation_loss"] for e in events if e.data] == losses
    assert "validation loss" in events[0].message
    validation = bench.read(job_id).result["validation"]  # type: ignore[index]
    assert validation["loss_per_epoch"] == losses and validation["loss"] == losses[-1]
    assert validation["best_loss"] == min(losses) and validation["early_stopped"] is False
    assert validation["rouge"]["n"] == 8


def _dataset(bench: Bench, records: list[dict[str, object]], kind: str = "pairs") -> str:
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    key, digest = bench.store.put("datasets", data, suffix=".jsonl")
    field = "messages" if kind == "chat" else None
    with bench.factory.begin() as session:
        dataset = Dataset(id=new_id("ds"), team_id=bench.team_id, name=kind, format="jsonl",
                          kind=kind, sha256=digest, size_bytes=len(data),
                          row_count=len(records), source_field=field or "source",
                          target_field=field or "target", storage_key=key)
        session.add(dataset)
    return dataset.id


def test_early_stopping_ends_the_job_after_patience_epochs_without_improvement(
        bench: Bench) -> None:
    # Summaries of words no training summary has: the better the model learns those, the
    # worse it does on these.
    mismatched = _dataset(bench, [{"source": s, "target": "woman ate lunch apple"}
                                  for s, _ in ROWS])
    job_id = bench.job(validation_dataset_id=mismatched, rho_policy={"type": "fixed",
                                                                           "rho": 1.0},
                       hyperparameters={"epochs": 6, "batch_size": 4, "max_length": 64,
                                        "learning_rate": 0.05, "early_stopping_patience": 1})
    assert run(bench, job_id) == "succeeded"
    job = bench.read(job_id)
    assert job.result is not None
    assert job.result["validation"]["early_stopped"] is True, job.result["validation"]
    assert job.result["epochs"] < 6 and "early stopping" in job.result["stopped_early"]
    assert len(_events(bench, job_id, "early_stopping")) == 1


def test_a_chat_data_set_trains_on_the_chat_template(bench: Bench, tmp_path: Path) -> None:
    model_dir = tmp_path / "chat-model"
    tiny_llama(0).save_pretrained(model_dir)
    tiny_chat_tokenizer().save_pretrained(model_dir)
    chat = _dataset(bench, [{"messages": [
        {"role": "user", "content": "the cat sat on the mat"},
        {"role": "assistant", "content": "cat sat"}]}] * 4, kind="chat")
    job_id = bench.job(model=str(model_dir), training_dataset_id=chat,
                       validation_dataset_id=chat, rho_policy={"type": "fixed", "rho": 1.0},
                       hyperparameters={"epochs": 2, "batch_size": 4, "max_length": 64,
                                        "learning_rate": 0.01})
    assert run(bench, job_id) == "succeeded"
    losses = [r.validation_loss for r in _epoch_rows(bench, job_id)]
    assert losses[1] < losses[0]  # it learns the one reply
    assert bench.read(job_id).result["validation"]["rouge"]["n"] == 4  # type: ignore[index]
