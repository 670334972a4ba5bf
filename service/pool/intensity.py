"""The shared facts the carbon planner reads from the database.

- Intensity history: every pass of the scheduler loop records the live reading of each region
  in use (the pool's and those of live jobs) into its 30-minute slot (`record_readings`). A
  reading already counted (same provider timestamp) is not counted again, so the provider
  chain's cache answering the same reading for five minutes adds nothing; slots are compacted
  as they fill (one row: the sum and count of the distinct readings) and rows older than
  ``GREENTRAINER_CARBON__HISTORY_DAYS`` are deleted (`prune`). `DbHistory` serves them to every
  forecast (`greentrainer_carbon.forecaster.Forecaster`), in the worker, the dispatcher and the
  API alike.
- Energy: the epochs recorded on a GPU class fit its energy model (`fitted_energy_model`,
  `greentrainer_carbon.energy_fit`) once enough are measured; until then the assumed one.
- Throughput: after each epoch the worker folds its full-cost epoch time per training example
  into its class's row for the model (`record_throughput`); `estimated_full_epoch_s` is the
  planner's first estimate of a job's epoch time, before the job measured its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.energy_fit import MeasuredEpoch, fit_energy_model
from greentrainer_carbon.errors import SchedulerError
from greentrainer_carbon.history import FloatArray, slot_of
from greentrainer_carbon.readings import CarbonReading
from service.db import session_scope
from service.models import IntensitySlot, Job, JobEpoch, WorkerThroughput, utcnow

log = logging.getLogger("service.pool.intensity")

THROUGHPUT_WEIGHT = 0.3  # weight of the newest epoch in the moving average
FIT_EPOCHS = 500  # the energy model is fitted from a class's newest epochs (hardware drifts)


def record_readings(session: Session, region: str, readings: Iterable[CarbonReading]) -> int:
    """Count each observed reading (not a forecast) once in its region's slot; returns how many
    were new. The caller commits."""
    added = 0
    for reading in readings:
        if reading.is_forecast:
            continue
        slot = slot_of(reading.timestamp)
        row = session.get(IntensitySlot, (region, slot), with_for_update=True)
        if row is None:
            try:
                with session.begin_nested():
                    session.add(IntensitySlot(
                        region=region, slot=slot, g_per_kwh_sum=reading.carbon_intensity_g_per_kwh,
                        readings=1, last_reading_at=reading.timestamp, source=reading.source[:100]))
                added += 1
                continue
            except IntegrityError:  # another scheduler wrote the slot first
                row = session.get(IntensitySlot, (region, slot), with_for_update=True,
                                  populate_existing=True)
                if row is None:
                    continue
        if reading.timestamp > row.last_reading_at:
            row.g_per_kwh_sum += reading.carbon_intensity_g_per_kwh
            row.readings += 1
            row.last_reading_at, row.source = reading.timestamp, reading.source[:100]
            added += 1
    return added


def prune(session: Session, keep_days: float, now: datetime | None = None) -> int:
    """Delete slots older than ``keep_days``; returns how many."""
    oldest = slot_of((now or utcnow()) - timedelta(days=keep_days))
    result = session.execute(delete(IntensitySlot).where(IntensitySlot.slot < oldest))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class DbHistory:
    """`greentrainer_carbon.history.IntensityHistory` over the recorded slots."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def grid(self, region: str, first_slot: int, n_slots: int) -> FloatArray:
        out = np.full(n_slots, np.nan)
        with session_scope(self.factory) as session:
            rows = session.execute(
                select(IntensitySlot.slot, IntensitySlot.g_per_kwh_sum, IntensitySlot.readings)
                .where(IntensitySlot.region == region, IntensitySlot.slot >= first_slot,
                       IntensitySlot.slot < first_slot + n_slots))
            for slot, total, count in rows:
                if count:
                    out[slot - first_slot] = total / count
        return out


def record_throughput(session: Session, gpu_class: str, model: str,
                      full_epoch_s_per_example: float) -> None:
    """Fold one measured epoch (its wall time scaled to full cost, per training example) into
    the class's moving average for the model. The caller commits."""
    if not full_epoch_s_per_example > 0:
        return
    row = session.get(WorkerThroughput, (gpu_class, model[:500]), with_for_update=True)
    if row is None:
        session.add(WorkerThroughput(gpu_class=gpu_class, model=model[:500],
                                     full_epoch_s_per_example=full_epoch_s_per_example, epochs=1,
                                     updated_at=utcnow()))
        return
    row.full_epoch_s_per_example += THROUGHPUT_WEIGHT * (
        full_epoch_s_per_example - row.full_epoch_s_per_example)
    row.epochs += 1
    row.updated_at = utcnow()


def estimated_full_epoch_s(session: Session, gpu_class: str, model: str, examples: int,
                           default_s: float) -> float:
    """A full-cost epoch's wall time for ``examples`` training examples of ``model`` on
    ``gpu_class`` (any class when it has none measured), else ``default_s``."""
    rows = session.scalars(select(WorkerThroughput.full_epoch_s_per_example)
                           .where(WorkerThroughput.model == model[:500])
                           .order_by((WorkerThroughput.gpu_class == gpu_class).desc(),
                                     WorkerThroughput.updated_at.desc())).first()
    if rows is None or examples <= 0:
        return default_s
    return float(rows) * examples


def fitted_energy_model(session: Session, gpu_class: str, assumed: EnergyModel,
                        newest: int = FIT_EPOCHS) -> EnergyModel:
    """The energy model fitted from the ``newest`` measured epochs of jobs on ``gpu_class``, or
    ``assumed`` while too few are recorded (its ``source`` says which)."""
    rows = session.execute(
        select(JobEpoch.job_id, JobEpoch.rho, JobEpoch.wall_seconds, JobEpoch.energy_kwh)
        .join(Job, Job.id == JobEpoch.job_id)
        .where(Job.gpu_class == gpu_class, JobEpoch.energy_kwh.is_not(None))
        .order_by(JobEpoch.id.desc()).limit(newest))
    epochs = [MeasuredEpoch(job, rho, seconds, kwh) for job, rho, seconds, kwh in rows
              if kwh is not None]
    return fit_energy_model(epochs, assumed, f"on {gpu_class}")


def live_regions(session: Session, pool_region: str) -> list[str]:
    """The pool's region and those of jobs not yet finished."""
    from service.models import Job
    from service.states import ACTIVE

    regions = set(session.scalars(select(Job.region).distinct().where(
        Job.region.is_not(None), Job.status.in_([s.value for s in ACTIVE]))))
    return sorted({pool_region, *(r for r in regions if r)})


def record_intensities(factory: sessionmaker[Session], current: Callable[[str | None], CarbonReading],
                       pool_region: str, keep_days: float) -> int:
    """One scheduler pass's share of the history: each live region's reading now (taken
    outside any transaction: a provider may be slow), recorded, and old slots pruned. A region
    whose providers all fail is skipped until the next pass. Returns how many were new."""
    with session_scope(factory) as session:
        regions = live_regions(session, pool_region)
    readings: dict[str, CarbonReading] = {}
    for region in regions:
        try:
            readings[region] = current(None if region == pool_region else region)
        except SchedulerError:
            log.warning("no carbon reading for region %s this pass", region, exc_info=True)
    added = 0
    with session_scope(factory) as session:
        for region, reading in readings.items():
            added += record_readings(session, region, [reading])
        prune(session, keep_days)
    return added
