"""The periodic scheduler process (`greentrainer scheduler --dispatch`): every
``dispatch_interval_seconds`` it reconciles (expired leases, stale slots), re-queues the
carbon plan's paused jobs whose restart has come (`service.pausing.resume_due`), notes the grid's
intensity for newly submitted jobs, asks the carbon planner when deadline jobs start
(`service.pool.green`), and dispatches what
fits. Several may run at once (row locks)."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.config import CarbonSettings
from service.db import session_scope
from service.pausing import resume_due
from service.pool.dispatcher import Send, dispatch_once
from service.pool.green import WindowPlanning, plan_windows
from service.pool.intensity import record_intensities
from service.pool.reconciler import reconcile
from service.pool.submission import Current, note_submission_intensities
from service.settings import PoolSettings

log = logging.getLogger("service.pool.loop")

STALE_HEARTBEATS = 5  # a slot silent for 5 heartbeats is not offered to new jobs


def stale_after_s(pool: PoolSettings) -> float:
    return pool.heartbeat_seconds * STALE_HEARTBEATS


def tick(factory: sessionmaker[Session], pool: PoolSettings, send: Send,
         planning: WindowPlanning | None, current: Current | None = None,
         carbon: CarbonSettings | None = None) -> None:
    """One reconcile + resume + record + note + plan + dispatch pass."""
    stale = stale_after_s(pool)
    reconcile(factory, max_attempts=pool.max_attempts, stale_after_s=stale)
    with session_scope(factory) as session:  # carbon pauses whose restart has come
        for job_id in resume_due(session):
            log.info("resumed job %s: its planned restart has come", job_id)
    if current is not None:
        if carbon is not None:
            record_intensities(factory, current, carbon.pool_region, carbon.history_days)
        note_submission_intensities(factory, current)
    if planning is not None:
        plan_windows(factory, planning, default_epoch_seconds=pool.default_epoch_seconds)
    for item in dispatch_once(factory, send, stale_after_s=stale,
                              pickup_seconds=pool.pickup_seconds):
        log.info("started job %s on %s (slot %s)", item.job_id, item.gpu_class, item.slot)


def run_forever(factory: sessionmaker[Session], pool: PoolSettings, send: Send,
                planning: WindowPlanning | None, stop: threading.Event,
                current: Current | None = None, carbon: CarbonSettings | None = None) -> None:
    """Tick until ``stop`` is set; a failing pass is logged and the next one runs."""
    while not stop.is_set():
        try:
            tick(factory, pool, send, planning, current, carbon)
        except Exception:  # one bad pass (DB restart, broker down) must not end the loop
            log.exception("scheduler pass failed; retrying")
        stop.wait(pool.dispatch_interval_seconds)
