"""OpenAI's object shapes (files, fine-tuning jobs, their events and checkpoints) and the
conversions from the service's rows. Times are Unix seconds; statuses are OpenAI's names."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from service.models import Artifact, Dataset, Job, JobEpoch, JobEvent
from service.routers.jobs import job_out
from service.states import JobStatus

# The service's status -> OpenAI's (a job waiting for a green window is queued to OpenAI).
STATUS = {JobStatus.VALIDATING: "validating_files", JobStatus.QUEUED: "queued",
          JobStatus.WAITING_FOR_GREEN: "queued", JobStatus.RUNNING: "running",
          JobStatus.PAUSED: "paused", JobStatus.SUCCEEDED: "succeeded",
          JobStatus.FAILED: "failed", JobStatus.CANCELLED: "cancelled"}
LEVEL = {"info": "info", "warning": "warn", "error": "error"}
# The learning rate that a learning_rate_multiplier of 1 means (the default 2e-5 is 0.2 of it).
BASE_LEARNING_RATE = 1e-4
EVENT_PREFIX = "ftevent-"


def seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def unix(moment: datetime | None) -> int | None:
    return seconds(moment) if moment is not None else None


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    status_details: str | None = None
    expires_at: int | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


def file_object(dataset: Dataset) -> FileObject:
    return FileObject(id=dataset.id, bytes=dataset.size_bytes, created_at=seconds(dataset.created_at),
                      filename=dataset.name, purpose="fine-tune")


def result_file_object(artifact: Artifact) -> FileObject:
    return FileObject(id=artifact.id, bytes=artifact.size_bytes,
                      created_at=seconds(artifact.created_at), filename=artifact.filename,
                      purpose="fine-tune-results")


class JobErrorObject(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobErrorObject | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: dict[str, Any]
    method: dict[str, Any]
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: str
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    integrations: list[Any] = []
    metadata: dict[str, str] | None
    user_provided_suffix: str | None
    greentrainer: dict[str, Any]


def openai_hyperparameters(native: dict[str, Any]) -> dict[str, Any]:
    """n_epochs, batch_size, learning_rate_multiplier of the job's (resolved) hyperparameters."""
    return {"n_epochs": native.get("epochs"), "batch_size": native.get("batch_size"),
            "learning_rate_multiplier": round(float(native.get("learning_rate", 0.0))
                                              / BASE_LEARNING_RATE, 10)}


def fine_tuned_model(job: Job) -> str | None:
    """The name of a succeeded job's model: ``ft:<base>[:<suffix>]:<job id>``."""
    if job.status != JobStatus.SUCCEEDED.value:
        return None
    return ":".join(["ft", job.model, *([job.suffix] if job.suffix else []), job.id])


def job_object(job: Job, result_files: list[str], estimated_finish: datetime | None) -> FineTuningJob:
    native = job_out(job).model_dump(mode="json")
    hyper = openai_hyperparameters(job.hyperparameters)
    error = JobErrorObject(code=job.error_code, message=job.error_message or "") \
        if job.error_code else None
    result = job.result or {}
    return FineTuningJob(
        id=job.id, created_at=seconds(job.created_at), error=error,
        fine_tuned_model=fine_tuned_model(job), finished_at=unix(job.finished_at),
        hyperparameters=hyper, method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
        model=job.model, organization_id=job.team_id, result_files=result_files,
        seed=int(job.hyperparameters.get("seed", 0)), status=STATUS[JobStatus(job.status)],
        trained_tokens=result.get("trained_tokens"), training_file=job.training_dataset_id,
        validation_file=job.validation_dataset_id, estimated_finish=unix(estimated_finish),
        metadata=job.user_metadata, user_provided_suffix=job.suffix,
        greentrainer={name: native[name] for name in (
            "status", "method", "rho_policy", "gpu_class", "gpus", "test_dataset", "planned_start_at",
            "last_finished_epoch", "pause", "result")})


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class JobEventObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any] | None


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobEventObject]
    has_more: bool


def event_object(event: JobEvent) -> JobEventObject:
    """An event; an epoch's record is a ``metrics`` event (its step is the epoch's number)."""
    return JobEventObject(id=f"{EVENT_PREFIX}{event.id}", created_at=seconds(event.created_at),
                          level=LEVEL.get(event.level, "info"),
                          message=f"[{event.type}] {event.message}",
                          type="metrics" if event.type == "epoch" else "message",
                          data=event.data)


class CheckpointObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, float | None]
    step_number: int


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CheckpointObject]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


def checkpoint_id(job_id: str, epoch: int) -> str:
    return f"ftckpt-{job_id}-epoch-{epoch}"


def checkpoint_object(job: Job, epoch: JobEpoch, steps_per_epoch: int) -> CheckpointObject:
    """A finished epoch as OpenAI's checkpoint: the model after that epoch, its training loss."""
    return CheckpointObject(
        id=checkpoint_id(job.id, epoch.epoch_index), created_at=seconds(epoch.created_at),
        fine_tuned_model_checkpoint=":".join(["ft", job.model, *([job.suffix] if job.suffix else []),
                                              job.id, f"ckpt-epoch-{epoch.epoch_index}"]),
        fine_tuning_job_id=job.id, step_number=(epoch.epoch_index + 1) * steps_per_epoch,
        metrics={"step": float((epoch.epoch_index + 1) * steps_per_epoch),
                 "train_loss": epoch.loss})
