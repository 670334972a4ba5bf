"""Webhook events: what happened to a job becomes one pending delivery per endpoint of its team
that listens for it, written in the caller's transaction (so an event is sent if and only if
the change it reports is committed). The scheduler process sends them (`sender.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Job, new_id, utcnow
from service.webhooks.models import WebhookDelivery, WebhookEndpoint
from service.webhooks.schemas import EVENT_TYPES

# The job status each event reports (a status the state machine may not have yet is harmless).
EVENT_OF_STATUS = {"succeeded": "job.succeeded", "failed": "job.failed",
                   "cancelled": "job.cancelled", "paused": "job.paused"}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def job_payload(job: Job, event_type: str, now: datetime) -> dict[str, Any]:
    """The event body, shaped as the Standard Webhooks spec suggests: type, timestamp, data."""
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return {"type": event_type, "timestamp": _iso(now), "data": {
        "object": "job", "id": job.id, "team_id": job.team_id, "status": job.status,
        "model": job.model, "method": job.method, "created_at": _iso(job.created_at),
        "finished_at": _iso(job.finished_at), "error": error, "result": job.result}}


def notify_job_event(session: Session, job: Job, event_type: str) -> int:
    """Queue ``event_type`` (one of EVENT_TYPES) about ``job`` for every enabled endpoint of its
    team that listens for it; returns how many deliveries were queued. Raises ValueError for an
    unknown event type (a programming error, not user input)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    now = utcnow()
    endpoints = session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.team_id == job.team_id, WebhookEndpoint.enabled.is_(True)))
    queued = 0
    for endpoint in endpoints:
        if event_type not in endpoint.event_types:
            continue
        session.add(WebhookDelivery(
            id=new_id("msg"), endpoint_id=endpoint.id, team_id=job.team_id, job_id=job.id,
            event_type=event_type, payload=job_payload(job, event_type, now), status="pending",
            attempts=0, next_attempt_at=now, attempt_log=[], created_at=now))
        queued += 1
    return queued


def notify_status(session: Session, job: Job, status: str) -> None:
    """Queue the event a new job status reports, if it reports one (called by
    `service.jobs.transition` for every status change)."""
    event_type = EVENT_OF_STATUS.get(status)
    if event_type is not None:
        notify_job_event(session, job, event_type)
