"""A background thread that renews a job's lease and notices when the job is no longer ours.

Every ``heartbeat_seconds`` it extends the lease (and the worker slot's heartbeat); when the
renewal matches no row (the job was cancelled, failed, or re-queued after our lease expired) it
sets `stop`, which the training loop checks between steps: cancel takes effect within about one
heartbeat plus one training step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.db import session_scope
from service.pool import leases

log = logging.getLogger("worker.heartbeat")


class LeaseKeeper:
    def __init__(self, factory: sessionmaker[Session], job_id: str, owner: str, *,
                 lease_seconds: float, heartbeat_seconds: float,
                 on_beat: Callable[[Session], None] | None = None) -> None:
        self.factory, self.job_id, self.owner = factory, job_id, owner
        self.lease_seconds, self.heartbeat_seconds = lease_seconds, heartbeat_seconds
        self.on_beat = on_beat
        self.stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=self.heartbeat_seconds + 5)

    def beat(self) -> bool:
        """Renew once; False when the job is no longer ours (then `stop` is set)."""
        try:
            with session_scope(self.factory) as session:
                ours = leases.renew(session, self.job_id, self.owner,
                                    lease_seconds=self.lease_seconds)
                if self.on_beat is not None:
                    self.on_beat(session)
        except SQLAlchemyError:  # a database blip: keep training, try again next beat
            log.warning("lease renewal of job %s failed; retrying", self.job_id, exc_info=True)
            return True
        if not ours:
            self.stop.set()
        return ours

    def _run(self) -> None:
        while not self._done.wait(self.heartbeat_seconds):
            if not self.beat():
                return
