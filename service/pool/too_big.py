"""Jobs that ask for more GPUs than any live worker of their class has: the dispatcher says so
in their events, once, instead of leaving them waiting silently. Such a job stays queued (a
larger worker may join the pool; the team may cancel it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.job_events import append_events
from service.models import JobEvent
from service.pool import slots

TOO_BIG_EVENT = "too_big"


def explain_too_big(session: Session, heads: Iterable[Any], *, now: datetime,
                    stale_after_s: float, any_class: str) -> list[str]:
    """Append a ``too_big`` event to each job of ``heads`` (rows with ``id``, ``gpus`` and
    ``gpu_class``) whose ``gpus`` no live worker of its class (of any class for ``any_class``)
    has, unless it has one already; returns those jobs' ids."""
    asking = [row for row in heads if row.gpus > 1]
    if not asking:
        return []
    largest = slots.largest_workers(session, now=now, stale_after_s=stale_after_s)
    too_big = {row.id: (row, max(largest.values(), default=0) if row.gpu_class == any_class
                        else largest.get(row.gpu_class, 0))
               for row in asking}
    too_big = {job_id: found for job_id, found in too_big.items() if found[0].gpus > found[1]}
    if not too_big:
        return []
    told = set(session.scalars(select(JobEvent.job_id).where(
        JobEvent.job_id.in_(too_big), JobEvent.type == TOO_BIG_EVENT)))
    new = [job_id for job_id in too_big if job_id not in told]
    append_events(session, new, TOO_BIG_EVENT, [
        f"waiting: the job asks for {too_big[j][0].gpus} GPUs on one worker, but the largest "
        f"live worker of class {too_big[j][0].gpu_class!r} has {too_big[j][1]} (start one with "
        f"`greentrainer worker --gpus 0,1,...`, or cancel the job and ask for fewer)"
        for j in new], level="warning",
        data=[{"gpus": too_big[j][0].gpus, "largest_worker_gpus": too_big[j][1]} for j in new])
    return new
