"""The seam between the API and whatever runs jobs.

The API only records jobs; after the database commit it tells a `JobDispatcher` that a job was
queued or cancelled. With a broker the app uses the pool's `CeleryJobDispatcher`
(service/pool/api_dispatcher.py: one dispatch pass right after the commit); without one,
`LoggingDispatcher`, and the scheduler loop picks queued jobs from the database. Tests use
`RecordingDispatcher` to see exactly what was sent.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal, Protocol

log = logging.getLogger("service.dispatch")


class JobDispatcher(Protocol):
    def job_queued(self, job_id: str) -> None:
        """Called once per new job, after the commit that made it `queued`."""
        ...

    def job_cancelled(self, job_id: str) -> None:
        """Called after the commit that made a job `cancelled` (e.g. to revoke a task)."""
        ...


def notify(dispatcher: JobDispatcher, event: Literal["queued", "cancelled"], job_id: str) -> bool:
    """Tell the dispatcher after a commit; returns False if it failed. A failure is logged and
    not raised: the job is already committed (the database is the source of truth) and the
    scheduler's reconciler re-sends queued jobs that the broker never got."""
    try:
        if event == "queued":
            dispatcher.job_queued(job_id)
        else:
            dispatcher.job_cancelled(job_id)
    except Exception:  # any broker/client error; the job row is already safe
        log.exception("dispatch failed; the job stays recorded",
                      extra={"job_id": job_id, "event": event})
        return False
    return True


class LoggingDispatcher:
    """Sends nothing; logs each call (the embedded default until a worker is wired in)."""

    def job_queued(self, job_id: str) -> None:
        log.info("job queued", extra={"job_id": job_id})

    def job_cancelled(self, job_id: str) -> None:
        log.info("job cancelled", extra={"job_id": job_id})


class RecordingDispatcher:
    """Keeps every call in order, thread-safe (the API serves requests from a thread pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []

    def job_queued(self, job_id: str) -> None:
        with self._lock:
            self.calls.append(("queued", job_id))

    def job_cancelled(self, job_id: str) -> None:
        with self._lock:
            self.calls.append(("cancelled", job_id))

    def calls_for(self, job_id: str) -> list[str]:
        with self._lock:
            return [kind for kind, seen in self.calls if seen == job_id]
