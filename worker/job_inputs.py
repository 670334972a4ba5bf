"""A job row -> what the core needs: model, tokenizer, tokenized data, TrainConfig."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from greentrainer_core.chat import ChatRow, load_chat_rows
from greentrainer_core.config import TrainConfig
from greentrainer_core.data import Example, SummaryRow, load_examples, load_rows
from service.models import Dataset, Job
from service.settings import Settings
from service.storage import BlobStore

MAX_TARGET_TOKENS = 128
EVAL_ROW_LIMIT = 200  # ROUGE on at most this many test rows (generation is slow)


class MissingInput(Exception):
    """A data set the job names is gone from the database."""


@dataclass
class JobInputs:
    model: Any
    tokenizer: Any
    examples: list[Example]
    config: TrainConfig
    test_rows: list[SummaryRow | ChatRow] | None
    validation: list[Example] | None = None
    validation_rows: list[SummaryRow | ChatRow] | None = None  # ROUGE at the end


def train_config(job: Job) -> TrainConfig:
    """The core's options from the job's hyperparameters (validated by the API's schema)."""
    h = job.hyperparameters
    max_length = int(h.get("max_length", 512))
    return TrainConfig(
        method=job.method, epochs=int(h.get("epochs", 3)), batch_size=int(h.get("batch_size", 4)),
        grad_accum=int(h.get("gradient_accumulation_steps", 1)),
        lr=float(h.get("learning_rate", 2e-5)), weight_decay=float(h.get("weight_decay", 0.0)),
        warmup_steps=int(h.get("warmup_steps", 0)), max_length=max_length,
        max_target_length=min(MAX_TARGET_TOKENS, max_length), seed=int(h.get("seed", 0)),
        early_stopping_patience=h.get("early_stopping_patience"))


def _dataset_file(session: Session, store: BlobStore, dataset_id: str) -> tuple[Path, Dataset]:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise MissingInput(f"data set {dataset_id} no longer exists")
    path = store.local_path(dataset.storage_key)
    # The core picks the reader by suffix; stored blobs keep the upload's suffix.
    return path, dataset


def load_inputs(session: Session, store: BlobStore, settings: Settings, job: Job,
                device: str) -> JobInputs:
    """Load everything the job trains on. Raises the core's DataError / ModelLoadError."""
    from greentrainer_core.models import load_causal_lm

    config = train_config(job)
    model, tokenizer = load_causal_lm(job.model, cache_dir=settings.hf_cache_dir)
    model.to(device)
    encoder_decoder = bool(model.config.is_encoder_decoder)

    def examples_of(dataset_id: str) -> list[Example]:
        path, dataset = _dataset_file(session, store, dataset_id)
        return load_examples(path, tokenizer, source_field=dataset.source_field,
                             target_field=dataset.target_field,
                             is_encoder_decoder=encoder_decoder, max_length=config.max_length,
                             max_target_length=config.max_target_length)

    examples = examples_of(job.training_dataset_id)
    inputs = JobInputs(model, tokenizer, examples, config, None)
    if job.validation_dataset_id is not None:
        inputs.validation = examples_of(job.validation_dataset_id)
        inputs.validation_rows = eval_rows(session, store, job.validation_dataset_id)
    if job.test_dataset_id is not None:
        inputs.test_rows = eval_rows(session, store, job.test_dataset_id)
    return inputs


def eval_rows(session: Session, store: BlobStore,
              dataset_id: str) -> list[SummaryRow | ChatRow]:
    """The first EVAL_ROW_LIMIT rows of a data set, to generate for and score with ROUGE."""
    path, dataset = _dataset_file(session, store, dataset_id)
    rows: list[SummaryRow | ChatRow] = []
    if dataset.kind == "chat":
        rows.extend(load_chat_rows(path)[:EVAL_ROW_LIMIT])
    else:
        rows.extend(load_rows(path, dataset.source_field, dataset.target_field)[:EVAL_ROW_LIMIT])
    return rows
