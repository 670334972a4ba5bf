"""Job domain logic: submit (idempotent), status changes through the state machine, cancel,
list. Routers and the worker call these; none of them talk HTTP."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from greentrainer_carbon.config import unknown_region
from service.db import one_of
from service.errors import IdempotencyConflict, IllegalTransition, InvalidInput, UnknownDataset
from service.job_events import NewEvent, append_event, append_events, insert_events
from service.model_ref import ModelRef, resolve_model
from service.models import Dataset, Job, new_id, utcnow
from service.schemas import CarbonAwareRho, JobCreate, ScheduleRho
from service.settings import Settings
from service.states import TERMINAL, JobStatus, check_transition
from service.webhooks.events import notify_status


def transition(session: Session, job: Job, target: JobStatus, *, message: str | None = None,
               error_code: str | None = None, error_message: str | None = None,
               result: dict[str, Any] | None = None) -> Job:
    """Move ``job`` to ``target`` if the state machine allows it, as a compare-and-set on the
    current status (a concurrent change makes this raise `IllegalTransition`, never overwrite),
    and record a ``status`` event in the same transaction."""
    current = JobStatus(job.status)
    check_transition(current, target)
    now = utcnow()
    values: dict[str, Any] = {"status": target.value, "updated_at": now}
    if target is JobStatus.RUNNING and job.started_at is None:
        values["started_at"] = now
    if target in TERMINAL:
        values["finished_at"] = now
    if error_code is not None:
        values.update(error_code=error_code, error_message=error_message)
    if result is not None:
        values["result"] = result
    # synchronize_session=False: the default would scan every Job in the session's identity
    # map on each call (hundreds in a dispatch pass); only ``job`` can match, updated below.
    outcome = session.execute(
        update(Job).where(Job.id == job.id, Job.status == current.value).values(**values)
        .execution_options(synchronize_session=False)
    )
    if outcome.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(job)
        raise IllegalTransition(
            f"job changed from {current.value} to {job.status} concurrently; "
            f"it was not made {target.value}", field="status")
    for name, value in values.items():  # as stored, without marking ``job`` dirty
        set_committed_value(job, name, value)
    append_event(session, job.id, "status", message or f"{current.value} -> {target.value}",
                 level="error" if target is JobStatus.FAILED else "info",
                 data={"from": current.value, "to": target.value})
    notify_status(session, job, target.value)  # webhooks, committed with the change
    return job


class JobRef(Protocol):
    """What `transition_many` reads of a job: a `Job`, or a row of ``select(Job.id, Job.status)``
    (the dispatcher reads hundreds per pass as rows, a fraction of the cost of ORM objects)."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...


def transition_many(session: Session, jobs: Sequence[JobRef], target: JobStatus, *,
                    messages: Sequence[str] | None = None,
                    values: Mapping[str, Any] | None = None,
                    skip_changed: bool = False) -> list[str]:
    """`transition` for many jobs at once (the dispatcher starts hundreds per pass): every
    ``current -> target`` is checked before anything is written, then one compare-and-set UPDATE
    per current status (``values``, e.g. the lease, are written by the same UPDATE) and one bulk
    INSERT of the ``status`` events (`append_events`), ``messages[i]`` for ``jobs[i]``. `Job`
    objects get the new values as stored; rows stay the snapshot they were. Returns the ids of
    the jobs changed, in the order given.

    Raises `IllegalTransition` for an illegal change, or when any job changed concurrently;
    then some rows may be updated already, so the caller must roll back (``session_scope`` does).
    With ``skip_changed`` (the dispatcher) the jobs still unchanged are first locked, skipping
    any row another transaction holds (``FOR UPDATE SKIP LOCKED`` on Postgres), and only those
    are changed: a job changed or held concurrently is left out, with no error and no event,
    and a second dispatcher neither waits for the first nor starts its jobs again.
    """
    if messages is not None and len(messages) != len(jobs):
        raise ValueError("transition_many: one message per job")
    if len({job.id for job in jobs}) != len(jobs):
        raise ValueError("transition_many: a job is listed twice")
    currents = [JobStatus(job.status) for job in jobs]
    for current in set(currents):
        check_transition(current, target)
    now = utcnow()
    common: dict[str, Any] = {**(values or {}), "status": target.value, "updated_at": now}
    if target in TERMINAL:
        common["finished_at"] = now
    by_status: dict[JobStatus, list[str]] = defaultdict(list)
    for job, current in zip(jobs, currents):
        by_status[current].append(job.id)
    changed: set[str] = set()
    for current, ids in by_status.items():
        # NB: the status test is written so that no index can serve it, and the rows are found
        # by primary key. As `status = ?`, statistics that count few or no queued jobs (a new
        # database, a burst since the last ANALYZE) let the planner scan every queued job and
        # check it against the ids: 29 ms (median, no statistics yet) for 200 starts, not 5.
        same_status = (Job.status == current.value).is_(true())
        if skip_changed:  # lock those unchanged, skipping rows another transaction holds
            ids = list(session.scalars(select(Job.id).where(one_of(session, Job.id, ids), same_status)
                                       .with_for_update(skip_locked=True)))
            if not ids:
                continue
        statement = update(Job).where(one_of(session, Job.id, ids), same_status).values(**common)
        if target is JobStatus.RUNNING:  # as `transition`: the first start only
            statement = statement.values(started_at=func.coalesce(Job.started_at, now))
        # synchronize_session=False: the Job objects' attributes are set below, as stored.
        statement = statement.execution_options(synchronize_session=False)
        if skip_changed:  # SQLite takes no row lock: a job may still change before the UPDATE
            changed.update(session.scalars(statement.returning(Job.id)))
            continue
        updated = session.execute(statement).rowcount  # type: ignore[attr-defined]
        if updated != len(ids):
            raise IllegalTransition(f"{len(ids) - updated} of {len(ids)} {current.value} jobs changed "
                                    f"concurrently; none was made {target.value}", field="status")
        changed.update(ids)
    kept = [i for i, job in enumerate(jobs) if job.id in changed]
    for i in kept:
        job = jobs[i]
        if isinstance(job, Job):  # as stored, without marking it dirty
            for name, value in common.items():
                set_committed_value(job, name, value)
            if target is JobStatus.RUNNING and job.started_at is None:
                set_committed_value(job, "started_at", now)
    # One data object per move, shared: `insert_events` sends each distinct event once.
    moves = {current: {"from": current.value, "to": target.value} for current in by_status}
    append_events(session, [jobs[i].id for i in kept], "status",
                  [messages[i] if messages is not None
                   else f"{currents[i].value} -> {target.value}" for i in kept],
                  level="error" if target is JobStatus.FAILED else "info",
                  data=[moves[currents[i]] for i in kept])
    return [jobs[i].id for i in kept]


def request_fingerprint(request: JobCreate) -> str:
    # Fields added later count only when given, so a request's fingerprint stays what it was.
    body = request.model_dump(mode="json", exclude={
        name for name in ("suffix", "metadata") if getattr(request, name) is None})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _find_by_key(session: Session, team_id: str, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.team_id == team_id, Job.idempotency_key == key))


def _replay(existing: Job, fingerprint: str) -> Job:
    if existing.request_sha256 != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request "
                                  f"(job {existing.id}); use a new key", field="Idempotency-Key")
    return existing


def _team_dataset(session: Session, team_id: str, dataset_id: str, field: str) -> str:
    found = session.scalar(_TEAM_DATASET, {"id": dataset_id, "team_id": team_id})
    if found is None:
        raise UnknownDataset(f"{field}: no data set with id {dataset_id!r}", field=field)
    return found


def _check_policy(request: JobCreate, settings: Settings) -> None:
    policy, epochs = request.rho_policy, request.hyperparameters.epochs
    if isinstance(policy, CarbonAwareRho) and (problem := unknown_region(policy.region)):
        raise InvalidInput(problem, field="rho_policy.region")
    classes = settings.pool.gpu_classes
    if classes and request.gpu_class != "any" and request.gpu_class not in classes:
        raise InvalidInput(f"gpu_class {request.gpu_class!r} is not served by this pool; use "
                           f"any or one of {', '.join(classes)} (GREENTRAINER_POOL__GPU_CLASSES)",
                           field="gpu_class")
    if request.gpus > settings.pool.max_gpus_per_job:
        raise InvalidInput(f"gpus must be at most {settings.pool.max_gpus_per_job} "
                           f"(GREENTRAINER_POOL__MAX_GPUS_PER_JOB), got {request.gpus}",
                           field="gpus")
    if isinstance(policy, CarbonAwareRho) and policy.deadline is not None:
        limit = settings.pool.max_deadline_days
        if policy.deadline > utcnow() + timedelta(days=limit):
            raise InvalidInput(f"rho_policy.deadline must be at most {limit:g} days ahead "
                               f"(GREENTRAINER_POOL__MAX_DEADLINE_DAYS), got "
                               f"{policy.deadline.isoformat()}", field="rho_policy.deadline")
    if isinstance(policy, ScheduleRho) and len(policy.rhos) != epochs:
        raise InvalidInput(f"rho_policy.rhos has {len(policy.rhos)} values but "
                           f"hyperparameters.epochs is {epochs}: give one rho per epoch",
                           field="rho_policy.rhos")
    if request.hyperparameters.early_stopping_patience and request.validation_dataset is None:
        raise InvalidInput("hyperparameters.early_stopping_patience needs a validation_dataset "
                           "(its loss decides when to stop)",
                           field="hyperparameters.early_stopping_patience")


class JobCheck(Protocol):
    """An extra submission check, run after the built-in ones (e.g. the carbon planner refusing
    a CO2 budget that even the cheapest schedule cannot meet). Raises an `InvalidInput` naming
    the field; may return a plan, recorded on the new job as a ``carbon_plan`` event."""

    def __call__(self, session: Session, team_id: str,
                 request: JobCreate) -> dict[str, Any] | None: ...


def _validate(session: Session, team_id: str, request: JobCreate, settings: Settings,
              checks: Sequence[JobCheck],
              plans: list[dict[str, Any]]) -> tuple[ModelRef, str, str | None, str | None]:
    """(model, training, validation, test data set ids), or `InvalidInput` naming the field;
    the checks' plans are added to ``plans``."""
    model = resolve_model(request.model, allowed_dirs=settings.allowed_model_dirs,
                          hf_cache_dir=settings.hf_cache_dir)
    training = _team_dataset(session, team_id, request.training_dataset, "training_dataset")
    validation = test = None
    if request.validation_dataset is not None:
        validation = _team_dataset(session, team_id, request.validation_dataset,
                                   "validation_dataset")
    if request.test_dataset is not None:
        test = _team_dataset(session, team_id, request.test_dataset, "test_dataset")
    _check_policy(request, settings)
    for check in checks:
        plan = check(session, team_id, request)
        if plan is not None:
            plans.append(plan)
    return model, training, validation, test


def submit_job(session: Session, team_id: str, request: JobCreate, settings: Settings, *,
               idempotency_key: str | None = None,
               checks: Sequence[JobCheck] = ()) -> tuple[Job, bool]:
    """Record a new job as `queued` (through `validating`); returns (job, created).

    With an ``idempotency_key`` already used by this team for the same request, returns the
    existing job and ``created=False``; for a different request raises `IdempotencyConflict`.
    Raises `InvalidInput` subclasses naming the field for an unknown model or data set.
    The caller commits, then tells the dispatcher (only when ``created``).
    """
    fingerprint = request_fingerprint(request)
    plans: list[dict[str, Any]] = []
    try:
        model, training, validation, test = _validate(session, team_id, request, settings,
                                                      checks, plans)
    except InvalidInput:
        # A retry of a request that was accepted earlier gets its job back even if it would
        # not pass today (a data set deleted since, a forecast that changed).
        existing = _find_by_key(session, team_id, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, fingerprint), False
    # Validation passed: the job is recorded directly as queued, and its log shows both steps.
    check_transition(JobStatus.VALIDATING, JobStatus.QUEUED)
    policy = request.rho_policy
    carbon = policy if isinstance(policy, CarbonAwareRho) else None
    now = utcnow()
    job = _insert_unless_key_taken(session, dict(
        id=new_id("job"), team_id=team_id, status=JobStatus.QUEUED.value,
        model=model.name, model_source=model.source, method=request.method,
        hyperparameters=request.hyperparameters.model_dump(mode="json"),
        rho_policy=policy.model_dump(mode="json"),
        region=policy.region, deadline=policy.deadline,
        co2_budget_kg=carbon.co2_budget_kg if carbon else None,
        gpu_class=request.gpu_class, gpus=request.gpus, training_dataset_id=training,
        validation_dataset_id=validation, test_dataset_id=test,
        idempotency_key=idempotency_key, request_sha256=fingerprint,
        created_at=now, updated_at=now, attempts=0,
        suffix=request.suffix, user_metadata=request.metadata,
    ))
    if job is None:  # this team already used the key: a retry (or a misuse) of that request
        assert idempotency_key is not None  # only the key's unique constraint can conflict
        existing = _find_by_key(session, team_id, idempotency_key)
        if existing is None:
            raise IdempotencyConflict("the job for this Idempotency-Key is being created by "
                                      "another request; retry", field="Idempotency-Key")
        return _replay(existing, fingerprint), False
    insert_events(session, [
        NewEvent(job.id, "created", f"job submitted: {request.method} on {model.name}",
                 data={"model_source": model.source}),
        NewEvent(job.id, "status", "validated; waiting for a GPU",
                 data={"from": JobStatus.VALIDATING.value, "to": JobStatus.QUEUED.value}),
        *(NewEvent(job.id, "carbon_plan", "CO2 budget checked: the cheapest schedule needs "
                   f"{plan['minimum_kg_co2']:.4g} kg of the {plan['co2_budget_kg']:.4g} kg "
                   f"budget (every epoch at rho {plan['rho']:g})", data=plan)
          for plan in plans if "minimum_kg_co2" in plan)])
    return job, True


# Built once (building a statement costs more CPU than its round trip): a data set of the
# team, and the job INSERT ... ON CONFLICT (team_id, idempotency_key) DO NOTHING RETURNING id.
_datasets, _jobs = Dataset.__table__, Job.__table__
_TEAM_DATASET = select(_datasets.c.id).where(_datasets.c.id == bindparam("id"),
                                             _datasets.c.team_id == bindparam("team_id"),
                                             _datasets.c.deleted_at.is_(None))
_INSERT_JOB = {
    name: dialect.insert(_jobs)
    .on_conflict_do_nothing(index_elements=["team_id", "idempotency_key"])
    .returning(_jobs.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _insert_unless_key_taken(session: Session, values: dict[str, Any]) -> Job | None:
    """Insert the job unless this team already used its idempotency key: one round trip, no
    savepoint, and a racing retry never raises. The `Job` holds ``values`` as stored (the
    columns not in them read None) and is not in ``session``; None when the key is taken."""
    insert_ = _INSERT_JOB[session.get_bind().dialect.name]
    if session.execute(insert_, values).first() is None:
        return None
    return Job(**values)


def cancel_job(session: Session, job: Job) -> tuple[Job, bool]:
    """Cancel a non-terminal job; returns (job, changed). Cancelling a cancelled job is a no-op
    (safe retries); a succeeded or failed job raises `IllegalTransition`."""
    if job.status == JobStatus.CANCELLED.value:
        return job, False
    return transition(session, job, JobStatus.CANCELLED, message="cancelled by the team"), True


def list_jobs(session: Session, team_id: str | None, *, after: str | None, limit: int,
              status: JobStatus | None = None) -> tuple[list[Job], bool]:
    """Newest first; ``after`` is the last id of the previous page. ``team_id=None`` = all teams."""
    query = select(Job).order_by(Job.id.desc()).limit(limit + 1)
    if team_id is not None:
        query = query.where(Job.team_id == team_id)
    if after is not None:
        query = query.where(Job.id < after)
    if status is not None:
        query = query.where(Job.status == status.value)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit

