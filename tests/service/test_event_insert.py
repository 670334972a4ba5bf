"""`insert_events`, the one INSERT of many events (the scheduler pass writes 20,000, the
dispatcher hundreds), on SQLite and Postgres: every event as given, in the order given, however
many share their text and data."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from service.job_events import NewEvent, insert_events
from service.models import JobEvent
from tests.pool.test_dispatch import factory, job, postgres, team

__all__ = ["factory", "postgres"]


def test_events_are_stored_as_given_in_order_whatever_they_share(
        factory: sessionmaker[Session]) -> None:
    shared = {"start_at": "2026-12-04T06:00:00+00:00", "notes": ["a \"quoted\" note"]}
    with factory.begin() as session:
        t = team(session)
        a, b = job(session, t), job(session, t)
        given = [NewEvent(a, "status", "queued -> waiting_for_green", "info", {"from": "queued"}),
                 NewEvent(b, "green_window", "planned start", "info", shared),
                 NewEvent(a, "green_window", "planned start", "info", shared),
                 NewEvent(b, "green_window", "planned start", "info", dict(shared)),
                 NewEvent(a, "green_window", "failed: it's 'odd'", "warning"),
                 NewEvent(b, "status", "queued -> waiting_for_green", "info", {"from": "queued"})]
        insert_events(session, given)
    with factory() as session:
        stored = list(session.scalars(select(JobEvent).order_by(JobEvent.id)))
        # None is stored as JSON null, as the JSON type stores it, not as SQL NULL
        nulls = session.scalar(text("SELECT count(*) FROM job_events WHERE data IS NULL"))
    assert [NewEvent(e.job_id, e.type, e.message, e.level, e.data) for e in stored] == given
    assert len({e.created_at for e in stored}) == 1 and nulls == 0
