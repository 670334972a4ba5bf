"""/v1/fine_tuning/jobs: create, list, retrieve, cancel, pause, resume, events, checkpoints,
over the native job functions (`service.jobs`, `service.pausing`, `service.job_events`)."""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.deps import AppContext, Context, CurrentPrincipal, OwnedJob, SessionDep, TeamId
from service.dispatch import notify
from service.errors import InvalidInput, UnknownDataset
from service.job_actions import act
from service.job_events import append_event, recent_events
from service.jobs import list_jobs, submit_job
from service.models import Artifact, Dataset, Job, JobEpoch, utcnow
from service.routers.openai.create import MAX_SEED, FineTuningJobCreate, openai_field, to_job_create
from service.routers.openai.objects import (
    EVENT_PREFIX,
    CheckpointList,
    EventList,
    FineTuningJob,
    JobList,
    checkpoint_id,
    checkpoint_object,
    event_object,
    job_object,
)
from service.states import JobStatus

router = APIRouter(prefix="/fine_tuning/jobs", tags=["openai"])


def job_objects(session: Session, jobs: Sequence[Job]) -> list[FineTuningJob]:
    """The jobs in OpenAI's shape: their result files (artifacts) and, for a running job with a
    finished epoch, the estimated finish (its mean epoch time for each epoch left)."""
    ids = [job.id for job in jobs]
    files: dict[str, list[str]] = {job_id: [] for job_id in ids}
    for job_id, artifact_id in session.execute(
            select(Artifact.job_id, Artifact.id).where(Artifact.job_id.in_(ids))
            .order_by(Artifact.created_at, Artifact.id)):
        files[job_id].append(artifact_id)
    running = [job.id for job in jobs if job.status == JobStatus.RUNNING.value]
    pace = {job_id: (float(mean), int(count)) for job_id, mean, count in session.execute(
        select(JobEpoch.job_id, func.avg(JobEpoch.wall_seconds), func.count())
        .where(JobEpoch.job_id.in_(running)).group_by(JobEpoch.job_id))} if running else {}
    now = utcnow()
    out = []
    for job in jobs:
        finish: datetime | None = None
        if job.id in pace:
            mean_s, done = pace[job.id]
            left = max(int(job.hyperparameters.get("epochs", done)) - done, 0)
            finish = now + timedelta(seconds=mean_s * left)
        out.append(job_object(job, files[job.id], finish))
    return out


@router.post("", response_model=FineTuningJob)
async def create_job(body: FineTuningJobCreate, context: Context, session: SessionDep,
                     team_id: TeamId,
                     idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
                     ) -> FineTuningJob:
    """Create a fine-tuning job (a native job: also at /jobs/{id} and on the dashboard)."""
    return await run_in_threadpool(_create, session, team_id, body, context, idempotency_key)


def _create(session: Session, team_id: str, body: FineTuningJobCreate, context: AppContext,
            idempotency_key: str | None) -> FineTuningJob:
    rows = session.scalar(select(Dataset.row_count).where(
        Dataset.id == body.training_file, Dataset.team_id == team_id, Dataset.deleted_at.is_(None)))
    if rows is None:
        raise UnknownDataset(f"training_file: no file with id {body.training_file!r}",
                             field="training_file")
    # A retry with the same Idempotency-Key must send the same request: the same seed.
    seed = int(hashlib.sha256(idempotency_key.encode()).hexdigest()[:8], 16) % MAX_SEED \
        if idempotency_key else secrets.randbelow(MAX_SEED)
    request, auto = to_job_create(body, rows, seed)
    try:
        job, created = submit_job(session, team_id, request, context.settings,
                                  idempotency_key=idempotency_key, checks=context.job_checks)
    except InvalidInput as exc:
        exc.field = openai_field(exc.field)
        raise
    if created and auto:
        hyper = job.hyperparameters
        append_event(session, job.id, "hyperparameters", f"{', '.join(auto)} resolved from "
                     f"{rows} training examples: {hyper['epochs']} epochs, batch size "
                     f"{hyper['batch_size']}, learning rate {hyper['learning_rate']:g}",
                     data={"auto": auto, "examples": rows, "hyperparameters": hyper})
    session.commit()
    if created:
        notify(context.dispatcher, "queued", job.id)
    return job_objects(session, [job])[0]


@router.get("", response_model=JobList)
def list_fine_tuning_jobs(session: SessionDep, principal: CurrentPrincipal,
                          after: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=100)] = 20) -> JobList:
    """The team's jobs, newest first; ``after`` is the last id of the previous page."""
    rows, has_more = list_jobs(session, None if principal.is_admin else principal.team_id,
                               after=after, limit=limit)
    return JobList(data=job_objects(session, rows), has_more=has_more)


@router.get("/{job_id}", response_model=FineTuningJob)
def retrieve(job: OwnedJob, session: SessionDep) -> FineTuningJob:
    return job_objects(session, [job])[0]


@router.post("/{job_id}/cancel", response_model=FineTuningJob)
def cancel(job: OwnedJob, context: Context, session: SessionDep) -> FineTuningJob:
    return job_objects(session, [act(session, context.dispatcher, job, "cancel")])[0]


@router.post("/{job_id}/pause", response_model=FineTuningJob)
def pause(job: OwnedJob, context: Context, session: SessionDep) -> FineTuningJob:
    """Pause now (waiting for a GPU) or at the end of the current epoch (running)."""
    return job_objects(session, [act(session, context.dispatcher, job, "pause")])[0]


@router.post("/{job_id}/resume", response_model=FineTuningJob)
def resume_job(job: OwnedJob, context: Context, session: SessionDep) -> FineTuningJob:
    return job_objects(session, [act(session, context.dispatcher, job, "resume")])[0]


def _cursor(after: str | None, prefix: str, field: str = "after") -> int | None:
    if after is None:
        return None
    number = after.removeprefix(prefix)
    if after == number or not number.isdigit():
        raise InvalidInput(f"after: {after[:80]!r} is not an id from this list (expected "
                           f"{prefix}<number>)", field=field)
    return int(number)


@router.get("/{job_id}/events", response_model=EventList)
def list_events(job: OwnedJob, session: SessionDep, after: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> EventList:
    """The job's events, newest first; ``after`` is the last id of the previous page."""
    rows = recent_events(session, job.id, before=_cursor(after, EVENT_PREFIX), limit=limit + 1)
    return EventList(data=[event_object(e) for e in rows[:limit]], has_more=len(rows) > limit)


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
def list_checkpoints(job: OwnedJob, session: SessionDep, after: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=100)] = 10) -> CheckpointList:
    """A checkpoint per finished epoch, newest first."""
    before = _cursor(after, checkpoint_id(job.id, 0).removesuffix("0"))
    query = select(JobEpoch).where(JobEpoch.job_id == job.id) \
        .order_by(JobEpoch.epoch_index.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(JobEpoch.epoch_index < before)
    rows = list(session.scalars(query))
    examples = session.scalar(select(Dataset.row_count).where(
        Dataset.id == job.training_dataset_id)) or 0
    steps = max(1, math.ceil(examples / max(1, int(job.hyperparameters.get("batch_size", 1)))))
    data = [checkpoint_object(job, row, steps) for row in rows[:limit]]
    return CheckpointList(data=data, has_more=len(rows) > limit,
                          first_id=data[0].id if data else None,
                          last_id=data[-1].id if data else None)
