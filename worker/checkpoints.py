"""A job's checkpoints: written on this machine, moved into the blob store before the epoch is
recorded, read back by whichever worker resumes the job, deleted when the job ends."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_core.errors import GreenTrainerError
from service.db import session_scope
from service.errors import StorageUnavailable
from service.models import Job
from service.settings import Settings
from service.states import TERMINAL, JobStatus
from service.storage import BlobStore

log = logging.getLogger("worker.checkpoints")

CHECKPOINTS_KEPT = 2


class CheckpointMissing(GreenTrainerError):
    """The job finished epochs but their checkpoint is gone from the store."""


def checkpoint_path(settings: Settings, job_id: str, epoch: int) -> Path:
    """Where an epoch's checkpoint is written on this machine before it moves into the store."""
    return Path(settings.data_dir) / "checkpoints" / job_id / f"epoch-{epoch}.pt"


def checkpoint_key(job_id: str, epoch: int) -> str:
    """The store's key of an epoch's checkpoint: any worker machine resumes from it."""
    return f"checkpoints/{job_id}/epoch-{epoch}.pt"


def forget_checkpoints(factory: sessionmaker[Session], store: BlobStore, job_id: str) -> None:
    """A finished job's checkpoints leave the store (its artifacts stay with the job)."""
    try:
        with session_scope(factory) as session:
            job = session.get(Job, job_id)
            if job is None or JobStatus(job.status) not in TERMINAL:
                return
        store.delete_prefix(f"checkpoints/{job_id}/")
    except (StorageUnavailable, OperationalError) as exc:  # they stay until a later delete
        log.warning("job %s: its checkpoints were not deleted: %s", job_id, exc)
