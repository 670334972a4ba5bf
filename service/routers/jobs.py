"""/jobs: submit, list, read, cancel, pause, resume, events (stored and live), epochs,
artifacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.artifact_download import artifact_response
from service.auth import Principal
from service.deps import AppContext, Context, CurrentPrincipal, OwnedJob, SessionDep, TeamId
from service.dispatch import notify
from service.errors import NotFound
from service.job_actions import act
from service.job_events import follow_events, list_events
from service.jobs import list_jobs, submit_job
from service.models import Artifact, Job, JobEpoch
from service.schemas import (
    ArtifactOut,
    EpochOut,
    EventOut,
    JobCreate,
    JobError,
    JobOut,
    JobPause,
    Page,
)
from service.states import TERMINAL, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]


def job_pause(job: Job) -> JobPause | None:
    """The pause asked for or in effect (None for none, or once the job has finished)."""
    if job.pause_reason is None or JobStatus(job.status) in TERMINAL:
        return None
    return JobPause(reason=job.pause_reason, pending=job.status != JobStatus.PAUSED.value,
                    requested_at=job.pause_requested_at, resume_at=job.resume_at,
                    note=job.pause_note)


def job_out(job: Job) -> JobOut:
    error = None
    if job.error_code:
        error = JobError(code=job.error_code, message=job.error_message or "")
    return JobOut(
        id=job.id, team_id=job.team_id, status=job.status, model=job.model,
        model_source=job.model_source, method=job.method, hyperparameters=job.hyperparameters,
        rho_policy=job.rho_policy, gpu_class=job.gpu_class, gpus=job.gpus,
        training_dataset=job.training_dataset_id, validation_dataset=job.validation_dataset_id,
        test_dataset=job.test_dataset_id, created_at=job.created_at, updated_at=job.updated_at,
        started_at=job.started_at, finished_at=job.finished_at,
        planned_start_at=job.planned_start_at, last_finished_epoch=job.last_finished_epoch,
        error=error, result=job.result, pause=job_pause(job), suffix=job.suffix,
        metadata=job.user_metadata,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobOut,
             responses={200: {"model": JobOut, "description": "Replay of an Idempotency-Key."}})
async def create_job(body: JobCreate, response: Response, context: Context, session: SessionDep,
                     team_id: TeamId,
                     idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
                     ) -> JobOut:
    """Submit a job. Retrying with the same `Idempotency-Key` returns the first job (200)."""
    # `async` with one explicit thread trip: a sync endpoint would take a second trip to the
    # thread pool just to validate the returned model.
    job, created = await run_in_threadpool(_submit, session, team_id, body, context,
                                           idempotency_key)
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return job


def _submit(session: Session, team_id: str, body: JobCreate, context: AppContext,
            idempotency_key: str | None) -> tuple[JobOut, bool]:
    """The job as the API shows it and whether it is new (committed, then dispatched)."""
    job, created = submit_job(session, team_id, body, context.settings,
                              idempotency_key=idempotency_key, checks=context.job_checks)
    session.commit()
    if created:
        notify(context.dispatcher, "queued", job.id)
    return job_out(job), created


@router.get("", response_model=Page[JobOut])
def get_jobs(session: SessionDep, principal: CurrentPrincipal, limit: Limit = 20,
             after: str | None = None,
             status_: Annotated[JobStatus | None, Query(alias="status")] = None,
             team_id: Annotated[str | None, Query(description="Admin only: one team's jobs.")]
             = None) -> Page[JobOut]:
    """The caller's jobs, newest first (an admin sees every team's, or one with `team_id`)."""
    scope = team_id if principal.is_admin and team_id else _scope(principal)
    rows, has_more = list_jobs(session, scope, after=after, limit=limit, status=status_)
    return Page[JobOut](data=[job_out(j) for j in rows], has_more=has_more,
                        last_id=rows[-1].id if rows else None)


def _scope(principal: Principal) -> str | None:
    return None if principal.is_admin else principal.team_id


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job: OwnedJob) -> JobOut:
    return job_out(job)  # no I/O: `owned_job` loaded every column


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel(job: OwnedJob, context: Context, session: SessionDep) -> JobOut:
    """Cancel a job in any non-terminal status; cancelling a cancelled job changes nothing."""
    return job_out(act(session, context.dispatcher, job, "cancel"))


@router.post("/{job_id}/pause", response_model=JobOut)
def pause(job: OwnedJob, context: Context, session: SessionDep) -> JobOut:
    """Pause a job: one waiting for a GPU at once, a running one when its current epoch ends
    (checkpoint kept, GPU slot freed; `pause.pending` until then). 409 for a finished job."""
    return job_out(act(session, context.dispatcher, job, "pause"))


@router.post("/{job_id}/resume", response_model=JobOut)
def resume_job(job: OwnedJob, context: Context, session: SessionDep) -> JobOut:
    """Re-queue a paused job (a team's pause, or a carbon pause ended early), or withdraw a
    pause a running job has not reached yet. 409 for a job that is neither."""
    return job_out(act(session, context.dispatcher, job, "resume"))


@router.get("/{job_id}/events", response_model=Page[EventOut],
            responses={200: {"content": {"text/event-stream": {}}}})
def get_events(job: OwnedJob, request: Request, context: Context, session: SessionDep,
               after: int | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               stream: bool = False,
               last_event_id: Annotated[int | None, Header()] = None,
               ) -> Page[EventOut] | StreamingResponse:
    """Stored events (JSON page), or with `stream=true` / `Accept: text/event-stream` a live
    Server-Sent Events stream that ends after the job's last event in a terminal status."""
    if stream or "text/event-stream" in request.headers.get("accept", ""):
        session.close()  # a stream may last hours: it must not hold a pooled connection
        frames = follow_events(context.factory, job.id,
                               after=last_event_id if last_event_id is not None else after,
                               poll_seconds=context.settings.sse_poll_seconds,
                               disconnected=request.is_disconnected,
                               permits=context.db_permits)
        return StreamingResponse(frames, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    rows = list_events(session, job.id, after=after, limit=limit + 1)
    page = rows[:limit]
    return Page[EventOut](
        data=[EventOut(id=e.id, job_id=e.job_id, created_at=e.created_at, level=e.level,
                       type=e.type, message=e.message, data=e.data) for e in page],
        has_more=len(rows) > limit, last_id=str(page[-1].id) if page else None)


@router.get("/{job_id}/epochs", response_model=list[EpochOut])
def get_epochs(job: OwnedJob, session: SessionDep) -> list[EpochOut]:
    """Per-epoch rho, carbon intensity, selected tensors, FLOPs, energy and CO2."""
    rows = session.scalars(select(JobEpoch).where(JobEpoch.job_id == job.id)
                           .order_by(JobEpoch.epoch_index))
    return [EpochOut.model_validate(row) for row in rows]


@router.get("/{job_id}/artifacts", response_model=list[ArtifactOut])
def get_artifacts(job: OwnedJob, session: SessionDep) -> list[ArtifactOut]:
    rows = session.scalars(select(Artifact).where(Artifact.job_id == job.id)
                           .order_by(Artifact.created_at, Artifact.id))
    return [ArtifactOut.model_validate(row) for row in rows]


@router.get("/{job_id}/artifacts/{artifact_id}/content", response_class=FileResponse)
def download_artifact(job: OwnedJob, artifact_id: str, context: Context,
                      session: SessionDep) -> Response:
    """The artifact's bytes (fine-tuned model, delta checkpoint, metrics), or a 307 to a
    presigned URL of the object store (GREENTRAINER_STORAGE__ARTIFACT_DOWNLOAD=redirect)."""
    artifact = session.get(Artifact, artifact_id)
    if artifact is None or artifact.job_id != job.id:
        raise NotFound(f"no artifact with id {artifact_id!r}", field="artifact_id")
    session.close()  # release the connection before a long download
    return artifact_response(context.store, context.settings.storage, artifact)
