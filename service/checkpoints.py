"""A job's per-epoch checkpoints as users see them: the `checkpoint` artifacts the worker
registers after each epoch (`worker/artifacts.py`), with that epoch's metrics. One
implementation for the native API and the OpenAI-compatible one."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.models import Artifact, Job, JobEpoch
from service.schemas import CheckpointMetrics, CheckpointOut

CHECKPOINT_KIND = "checkpoint"
_EPOCH = re.compile(r"^checkpoint-epoch-(\d+)\.")


def _epoch_of(artifact: Artifact) -> int | None:
    found = _EPOCH.match(artifact.filename)
    return int(found.group(1)) if found else None


def list_checkpoints(session: Session, job: Job) -> list[CheckpointOut]:
    """The job's checkpoints, oldest epoch first, each with its epoch's recorded metrics."""
    artifacts = session.scalars(select(Artifact).where(Artifact.job_id == job.id,
                                                       Artifact.kind == CHECKPOINT_KIND))
    epochs = {e.epoch_index: e for e in session.scalars(
        select(JobEpoch).where(JobEpoch.job_id == job.id))}
    out = []
    for artifact in artifacts:
        index = _epoch_of(artifact)
        if index is None:
            continue
        row = epochs.get(index)
        metrics = CheckpointMetrics(
            rho=row.rho, loss=row.loss, validation_loss=row.validation_loss,
            executed_flops=row.executed_flops, kg_co2=row.kg_co2) if row else CheckpointMetrics()
        out.append(CheckpointOut(id=artifact.id, job_id=job.id, epoch_index=index,
                                 filename=artifact.filename, size_bytes=artifact.size_bytes,
                                 sha256=artifact.sha256, created_at=artifact.created_at,
                                 metrics=metrics))
    return sorted(out, key=lambda c: c.epoch_index)


def checkpoint_artifact(session: Session, job: Job, epoch_index: int) -> Artifact:
    """The checkpoint artifact of one epoch. Raises NotFound naming the epoch."""
    for artifact in session.scalars(select(Artifact).where(Artifact.job_id == job.id,
                                                           Artifact.kind == CHECKPOINT_KIND)):
        if _epoch_of(artifact) == epoch_index:
            return artifact
    raise NotFound(f"job {job.id} has no checkpoint of epoch {epoch_index}",
                   field="epoch_index")
