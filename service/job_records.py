"""What the worker records for a job: per-epoch measurements and artifacts.

`record_epoch` writes the epoch row (the core's `EpochRecord` plus the worker's
`EpochMeasurement`) and advances ``jobs.last_finished_epoch`` in the caller's transaction;
replaying an epoch already recorded (a task re-delivered after a crash) changes nothing, so no
epoch is ever counted twice in FLOPs or CO2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from greentrainer_core.config import EpochRecord
from service.job_events import append_event
from service.models import Artifact, Job, JobEpoch, new_id, utcnow
from service.storage import BlobStore


@dataclass(frozen=True)
class EpochMeasurement:
    """What the worker measured around one epoch, beside the core's `EpochRecord` (the training
    facts): the grid intensity the epoch was charged at and the energy CodeCarbon measured."""

    carbon_intensity_g_per_kwh: float | None = None
    carbon_intensity_source: str | None = None
    energy_kwh: float | None = None
    kg_co2: float | None = None
    energy_is_estimate: bool = True


NOT_MEASURED = EpochMeasurement()


def epoch_row_values(record: EpochRecord, measured: EpochMeasurement) -> dict[str, object]:
    """The `job_epochs` columns of one epoch: the one mapping from the core's record (and the
    measurement) to the row that the API (`EpochOut`) and the dashboard read back."""
    return {
        "epoch_index": record.epoch, "rho": record.rho,
        "selected_tensor_count": len(record.selected),
        "selected_tensor_names": list(record.selected),
        "predicted_flops": float(record.predicted_flops),
        "executed_flops": float(record.executed_flops),
        "full_ft_flops": float(record.full_flops), "wall_seconds": record.wall_s,
        "loss": record.loss, "validation_loss": record.validation_loss, **asdict(measured),
    }


def record_epoch(session: Session, job: Job, record: EpochRecord,
                 measured: EpochMeasurement = NOT_MEASURED) -> tuple[JobEpoch, bool]:
    """Store ``record`` for ``job``; returns (row, created). An existing row for the same epoch
    index is returned unchanged (``created=False``)."""
    existing = session.scalar(select(JobEpoch).where(JobEpoch.job_id == job.id,
                                                     JobEpoch.epoch_index == record.epoch))
    if existing is not None:
        return existing, False
    row = JobEpoch(job_id=job.id, created_at=utcnow(), **epoch_row_values(record, measured))
    session.add(row)
    if job.last_finished_epoch is None or record.epoch > job.last_finished_epoch:
        job.last_finished_epoch = record.epoch
    job.updated_at = utcnow()
    validation = "" if record.validation_loss is None else \
        f", validation loss {record.validation_loss:.4f}"
    append_event(session, job.id, "epoch", f"epoch {record.epoch} done at rho "
                 f"{record.rho:.2f}, loss {record.loss:.4f}{validation}",
                 data={"epoch_index": record.epoch, "rho": record.rho, "loss": record.loss,
                       "validation_loss": record.validation_loss})
    session.flush()
    return row, True


def register_artifact(session: Session, store: BlobStore, job: Job, path: Path, *, kind: str,
                      filename: str | None = None) -> Artifact:
    """Copy the file at ``path`` into ``store`` and record it as an artifact of ``job``
    (kind: "model", "delta", "checkpoint", "metrics", ...). Registering the same file name
    again replaces the earlier artifact's content."""
    name = filename or Path(path).name
    key, digest, size = store.put_file(f"artifacts/{job.id}", Path(path), suffix=Path(name).suffix)
    row = session.scalar(select(Artifact).where(Artifact.job_id == job.id,
                                                Artifact.filename == name))
    if row is None:
        row = Artifact(id=new_id("art"), job_id=job.id, filename=name, created_at=utcnow(),
                       kind=kind, storage_key=key, sha256=digest, size_bytes=size)
        session.add(row)
    else:
        row.kind, row.storage_key, row.sha256, row.size_bytes = kind, key, digest, size
    session.flush()
    return row
