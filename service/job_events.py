"""A job's event log: stored rows, read as a page or followed live as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, sessionmaker

from service.db import ConnectionPermits
from service.models import Job, JobEvent, utcnow
from service.states import TERMINAL, JobStatus


def append_event(session: Session, job_id: str, type_: str, message: str, *,
                 level: str = "info", data: dict[str, Any] | None = None) -> JobEvent:
    """Add an event to the job's log in the caller's transaction."""
    event = JobEvent(job_id=job_id, type=type_, message=message, level=level, data=data,
                     created_at=utcnow())
    session.add(event)
    return event


@dataclass(frozen=True)
class NewEvent:
    """An event to record with `insert_events`."""

    job_id: str
    type: str
    message: str
    level: str = "info"
    data: dict[str, Any] | None = None


_INSERT = insert(JobEvent)  # built once: building it costs more CPU than sending it


def insert_events(session: Session, events: Sequence[NewEvent]) -> None:
    """Record ``events`` in the caller's transaction with one INSERT (ids follow the order
    given), all at the same ``created_at``. Pending ORM changes are flushed first, so the
    events land after everything the caller did before."""
    if not events:
        return
    now = utcnow()
    session.flush()  # what the caller added before comes first
    if session.get_bind().dialect.name == "postgresql":
        # One statement and JSON parameters, however many events: an executemany of 200
        # INSERTs (one pipeline) costs a statement per row on the server and more client CPU,
        # and so do text arrays (psycopg escapes each quoted element with a regex).
        kinds, kind_of = _kinds(events)
        session.connection().execute(_INSERT_PG, {
            "now": now, "kinds": kinds, "job_ids": [e.job_id for e in events], "kind_of": kind_of})
        return
    session.connection().execute(_INSERT, [
        {"job_id": e.job_id, "type": e.type, "message": e.message, "level": e.level,
         "data": e.data, "created_at": now} for e in events])


def _kinds(events: Sequence[NewEvent]) -> tuple[list[dict[str, Any]], list[int]]:
    """The distinct kinds of ``events`` (type, message, level and the same ``data`` object) and
    each event's kind, numbered from 1. Events of one decision share their text and data (a pass
    of the scheduler writes 10,000 alike): each kind is encoded and parsed once, not per event."""
    kinds: list[dict[str, Any]] = []
    numbers: dict[tuple[str, str, str, int], int] = {}
    kind_of = []
    for e in events:
        key = (e.type, e.message, e.level, id(e.data))  # the events keep each data object alive
        number = numbers.get(key)
        if number is None:
            kinds.append({"type": e.type, "message": e.message, "level": e.level, "data": e.data})
            number = numbers[key] = len(kinds)
        kind_of.append(number)
    return kinds, kind_of


# Built once. The events as three JSON parameters: the job ids, each event's kind, and the kinds,
# each kind parsed once into a record (`json_to_recordset`). Reading every event's fields with
# ``->>`` from `json_array_elements` parsed the event again for each field: 20,000 events of a
# scheduler pass cost the server 450 ms of CPU and the client 90 ms to encode, now 260 and 35
# (benchmarks/results/scheduler_pass.md). ROWS FROM zips the ids with their kinds and numbers
# them (WITH ORDINALITY): the ids follow the order given. A JSON null ``data`` becomes SQL NULL
# in a record: coalesce keeps it JSON null, as the JSON type stores None.
_INSERT_PG = text(
    "INSERT INTO job_events (job_id, type, message, level, data, created_at) "
    "SELECT e.job_id, k.type, k.message, k.level, coalesce(k.data, 'null'), :now "
    "FROM ROWS FROM (json_array_elements_text(:job_ids), json_array_elements_text(:kind_of)) "
    "WITH ORDINALITY AS e(job_id, kind, n) "
    "JOIN ROWS FROM (json_to_recordset(:kinds) AS (type text, message text, level text, "
    "data json)) WITH ORDINALITY AS k(type, message, level, data, number) "
    "ON k.number = e.kind::bigint ORDER BY e.n").bindparams(
        *(bindparam(name, type_=postgresql.JSON) for name in ("job_ids", "kind_of", "kinds")),
        bindparam("now", type_=JobEvent.created_at.type))


def append_events(session: Session, job_ids: Sequence[str], type_: str, messages: Sequence[str], *,
                  level: str = "info", data: Sequence[dict[str, Any] | None] | None = None) -> None:
    """Add one event per job, ``messages[i]`` (and ``data[i]``) to ``job_ids[i]``, in the caller's
    transaction (`insert_events`)."""
    if len(messages) != len(job_ids) or (data is not None and len(data) != len(job_ids)):
        raise ValueError("append_events: job_ids, messages and data must have the same length")
    insert_events(session, [
        NewEvent(job_id, type_, message, level, data[i] if data is not None else None)
        for i, (job_id, message) in enumerate(zip(job_ids, messages))])


def list_events(session: Session, job_id: str, *, after: int | None,
                limit: int) -> list[JobEvent]:
    """Events of a job in order; ``after`` is the id of the last event already seen."""
    query = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id).limit(limit)
    if after is not None:
        query = query.where(JobEvent.id > after)
    return list(session.scalars(query))


def recent_events(session: Session, job_id: str, *, before: int | None,
                  limit: int) -> list[JobEvent]:
    """Events of a job, newest first; ``before`` is the id of the oldest event already seen."""
    query = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id.desc()) \
        .limit(limit)
    if before is not None:
        query = query.where(JobEvent.id < before)
    return list(session.scalars(query))


def event_json(event: JobEvent) -> dict[str, Any]:
    return {"id": event.id, "job_id": event.job_id, "created_at": event.created_at.isoformat(),
            "level": event.level, "type": event.type, "message": event.message,
            "data": event.data}


def sse_frame(event: JobEvent) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event_json(event))}\n\n"


async def follow_events(factory: sessionmaker[Session], job_id: str, *, after: int | None,
                        poll_seconds: float,
                        permits: ConnectionPermits,
                        disconnected: Callable[[], Any] | None = None) -> AsyncIterator[str]:
    """SSE frames for every event after ``after``, polling the database, until the job is in
    a terminal status and its last event has been sent (or the client goes away). A comment
    line is sent on every empty poll so that proxies keep the connection open. Each poll takes
    one of the API's connection ``permits`` like any request, and only for the poll."""

    def poll(last: int | None) -> tuple[list[JobEvent], bool]:
        with factory() as session:
            # The status first: once it reads terminal, the events committed with that change
            # (and before it) are visible to the read that follows (read committed). Read the
            # other way round, the terminal change could land between the two reads and its
            # own event be missed by a stream that then ends.
            status = session.scalar(select(Job.status).where(Job.id == job_id))
            events = list_events(session, job_id, after=last, limit=500)
            return events, status is None or JobStatus(status) in TERMINAL

    last = after
    while True:
        events, finished = await permits.run(poll, last)
        for event in events:
            last = event.id
            yield sse_frame(event)
        if finished and not events:
            yield "event: end\ndata: {}\n\n"
            return
        if disconnected is not None and await disconnected():
            return
        if not events:
            yield ": keep-alive\n\n"
            await asyncio.sleep(poll_seconds)
