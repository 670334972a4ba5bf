"""The periodic scheduler process (`greentrainer scheduler --dispatch`): every
``dispatch_interval_seconds`` it reconciles (expired leases, stale slots), re-queues the
carbon plan's paused jobs whose restart has come (`service.pausing.resume_due`), notes the grid's
intensity for newly submitted jobs, asks the carbon planner when deadline jobs start
(`service.pool.green`), and dispatches what
fits. Several may run at once (row locks)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

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


def _step(name: str, step: Callable[[], object]) -> bool:
    """Run one stage of a pass; a failure is logged and the pass goes on (True when it ran)."""
    try:
        step()
    except Exception:  # noqa: BLE001 - MemoryError too: planning must not stop recovery
        log.exception("scheduler %s failed; the pass goes on", name)
        return False
    return True


def tick(factory: sessionmaker[Session], pool: PoolSettings, send: Send,
         planning: WindowPlanning | None, current: Current | None = None,
         carbon: CarbonSettings | None = None) -> bool:
    """One reconcile + resume + record + note + plan + dispatch pass. Each stage is isolated: one
    that fails (a provider, the planning of a job) is logged and the others still run, so that
    dead workers' jobs are recovered and queued jobs start. Returns whether every stage ran."""
    stale = stale_after_s(pool)
    ok = _step("reconcile", lambda: reconcile(factory, max_attempts=pool.max_attempts,
                                              stale_after_s=stale))
    ok &= _step("carbon resumes", lambda: _resume_due(factory, planning))
    if current is not None:
        if carbon is not None:
            history_days, region = carbon.history_days, carbon.pool_region
            ok &= _step("intensity record", lambda: record_intensities(
                factory, current, region, history_days))
        ok &= _step("submission intensities", lambda: note_submission_intensities(factory, current))
    if planning is not None:
        ok &= _step("green-window planning", lambda: plan_windows(
            factory, planning, default_epoch_seconds=pool.default_epoch_seconds))

    def dispatch() -> None:
        for item in dispatch_once(factory, send, stale_after_s=stale,
                                  pickup_seconds=pool.pickup_seconds):
            log.info("started job %s on %s (slot %s)", item.job_id, item.gpu_class, item.slot)

    return _step("dispatch", dispatch) and ok


def _resume_due(factory: sessionmaker[Session], planning: WindowPlanning | None) -> None:
    with session_scope(factory) as session:  # carbon pauses whose restart has come
        for job_id in resume_due(session, planning.now() if planning else None):
            log.info("resumed job %s: its planned restart has come", job_id)


def run_forever(factory: sessionmaker[Session], pool: PoolSettings, send: Send,
                planning: WindowPlanning | None, stop: threading.Event,
                current: Current | None = None, carbon: CarbonSettings | None = None) -> None:
    """Tick until ``stop`` is set; a failing pass is logged and the next one runs."""
    while not stop.is_set():
        tick(factory, pool, send, planning, current, carbon)  # logs its own failures
        stop.wait(pool.dispatch_interval_seconds)
