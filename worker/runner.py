"""Running one job on this worker: claim its lease, train epoch by epoch, record, finish.

Idempotent by construction: the job row says what is left to do. A task for a job that is
missing, finished, not dispatched, or held by a live worker returns without doing anything; a
job with finished epochs resumes from the checkpoint of its last finished epoch, read from the
blob store (any worker machine). Each epoch's row is written in the same transaction that
advances ``last_finished_epoch`` (`record_epoch`), after the checkpoint of that epoch is in the
store, so no epoch is counted twice and none is lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon import BudgetExhaustedError, SchedulerError
from greentrainer_core.config import EpochRecord, EpochStart, StepEvent
from greentrainer_core.errors import GreenTrainerError
from service.db import session_scope
from service.job_events import append_event
from service.job_records import EpochMeasurement, record_epoch
from service.models import Job, JobEpoch
from service.pool import leases, slots
from service.pool.carbon_plan import CarbonPlanning
from service.pool.intensity import record_throughput
from service.settings import PoolSettings, Settings
from service.states import JobStatus
from service.storage import BlobStore
from worker.artifacts import card_facts, save_epoch_checkpoint, save_outputs
from worker.carbon import JobCarbon
from worker.checkpoints import CHECKPOINTS_KEPT, CheckpointMissing, checkpoint_key, checkpoint_path, forget_checkpoints
from worker.claims import WorkerIdentity, claim, end
from worker.energy import EnergyMeter
from worker.exporter import METRICS
from worker.heartbeat import LeaseKeeper
from worker.job_inputs import MissingInput, load_inputs
from worker.outcomes import crash_code, crash_message, epoch_line, error_code, result_line
from worker.pauses import JobPaused, ask_carbon_pause, pause_if_asked
from worker.ranks import RankSpec, device_for, epoch_energy, free_memory, job_ranks, make_trainer
from worker.results import evaluations

__all__ = ["JobStopped", "WorkerIdentity", "run_job"]

log = logging.getLogger("worker.runner")

T = TypeVar("T")

PROGRESS_EVERY_SECONDS = 10.0  # step events are throttled to one progress event per interval


class JobStopped(Exception):
    """The job is no longer ours (cancelled, or re-queued after our lease expired)."""


def run_job(job_id: str, *, factory: sessionmaker[Session], settings: Settings,
            pool: PoolSettings, store: BlobStore, me: WorkerIdentity,
            planning: CarbonPlanning | None = None) -> str:
    """Run (or resume) ``job_id``; returns a short outcome for the log."""
    refused = claim(factory, job_id, me, pool)
    if refused is not None:
        log.info("job %s skipped: %s", job_id, refused)
        return f"skipped: {refused}"
    keeper = LeaseKeeper(factory, job_id, me.name, lease_seconds=pool.lease_seconds,
                         heartbeat_seconds=pool.heartbeat_seconds)
    own_planning = planning is None  # else the caller's, kept across jobs
    planning = planning or CarbonPlanning(settings, factory)
    job_run = _JobRun(job_id, factory, settings, store, me, keeper, planning,
                      db_patience_s=pool.lease_seconds)
    try:
        with keeper:
            job_run.run()
        return "succeeded"
    except JobStopped:
        with session_scope(factory) as session:
            slots.release(session, job_id, worker=me.name)
        return "stopped"
    except JobPaused:  # lease and slot were given back with the pause
        return "paused"
    except (GreenTrainerError, SchedulerError, MissingInput) as exc:  # the job's own input
        log.warning("job %s failed: %s: %s", job_id, error_code(exc), exc, extra={"job_id": job_id})
        end(factory, job_id, me, pool, "failed", code=error_code(exc), message=str(exc))
        return "failed"
    except Exception as exc:  # a crash of this try: retry on a worker until max_attempts
        log.exception("job %s crashed", job_id)
        end(factory, job_id, me, pool, "retry", code=crash_code(exc), message=crash_message(exc))
        return "retried"
    finally:
        job_run.close()
        METRICS.job_ended(job_id)
        forget_checkpoints(factory, store, job_id)
        if own_planning:
            planning.close()
        free_memory()


class _JobRun:
    def __init__(self, job_id: str, factory: sessionmaker[Session], settings: Settings,
                 store: BlobStore, me: WorkerIdentity, keeper: LeaseKeeper,
                 planning: CarbonPlanning, db_patience_s: float) -> None:
        self.job_id, self.factory, self.settings, self.store = job_id, factory, settings, store
        self.me, self.keeper, self.planning = me, keeper, planning
        self.db_patience_s = db_patience_s
        self.meter = EnergyMeter(gpu_ids=me.gpu_ids, country_iso3=me.country_iso3)
        self.last_progress = 0.0
        self.gpus = 1  # the job's devices: ranks of a data-parallel run when more than one

    def close(self) -> None:
        self.meter.stop()  # an epoch the run did not finish goes unrecorded

    def _session(self) -> Any:
        return session_scope(self.factory)

    def _write(self, what: str, write: Callable[[], T]) -> T:
        """Run the transaction ``write``, again while the database is unreachable, for up to
        ``db_patience_s`` (the lease's length): a short outage neither fails the job nor loses
        an epoch. Longer, the reconciler may have re-queued the job: the error is raised (the
        job resumes from its last checkpoint). Each ``write`` checks the lease is ours, and an
        epoch recorded twice is refused by its unique key (an event may be logged twice)."""
        deadline, pause = time.monotonic() + self.db_patience_s, 0.2
        while True:
            try:
                return write()
            except OperationalError:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("job %s: database unreachable while %s; retrying in %.1f s",
                            self.job_id, what, pause)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def run(self) -> None:
        device = device_for(0)

        def load() -> tuple[Any, int | None]:  # a database restart mid-load: load again
            with self._session() as session:
                job = session.get(Job, self.job_id)
                assert job is not None  # claimed a moment ago; never deleted while running
                self.gpus = job.gpus
                if job.gpus > self.me.devices:  # not sent here by the dispatcher: retried elsewhere
                    raise RuntimeError(f"the job asks for {job.gpus} devices; worker "
                                       f"{self.me.name} has {self.me.devices}")
                log.info("job %s: loading %s and its data on %s%s", self.job_id, job.model, device,
                         f" and {job.gpus - 1} more devices" if job.gpus > 1 else "",
                         extra={"job_id": self.job_id})
                loading = time.monotonic()
                inputs = load_inputs(session, self.store, self.settings, job, device)
                log.info("job %s: loaded in %.1f s: %d training examples%s", self.job_id,
                         time.monotonic() - loading, len(inputs.examples),
                         f", {len(inputs.test_rows)} test rows" if inputs.test_rows else "",
                         extra={"job_id": self.job_id})
                rows = list(session.scalars(select(JobEpoch).where(JobEpoch.job_id == job.id)
                                            .order_by(JobEpoch.epoch_index)))
                self.rho = JobCarbon(self.planning, session, job, inputs.config.epochs,
                                     len(inputs.examples), self.me.gpu_class, rows)
                self.model, self.examples = job.model, len(inputs.examples)
                return inputs, job.last_finished_epoch

        inputs, last = self._write("loading the job", load)
        resume = None
        if last is not None:
            key = checkpoint_key(self.job_id, last)
            if not self.store.exists(key):
                raise CheckpointMissing(f"epochs up to {last} are recorded but their "
                                        f"checkpoint {key} is missing from the store")
            resume = str(self.store.local_path(key))
        with job_ranks(self.gpus, RankSpec(self.settings, self.job_id, resume)):
            trainer = make_trainer(inputs, self.gpus, self.rho)
            if resume is not None:
                trainer.load_checkpoint(resume)
                self._event("resumed", f"resumed after epoch {last} from its checkpoint",
                            {"epoch_index": last})
            stopped_early = self._train(trainer, inputs, last)
        self._finish(trainer, inputs, stopped_early)

    def _train(self, trainer: Any, inputs: Any, last: int | None) -> str | None:
        """Train the epochs left; returns why the run stopped early (None: it did not)."""
        stopped_early = None
        epochs = inputs.config.epochs
        try:
            if trainer.epoch < epochs and not trainer.stopped_early():  # (resumed after the end)
                self._boundary(last)
                self._begin_epoch(trainer.epoch)
            for event in trainer.events():
                if self.keeper.stop.is_set():
                    raise JobStopped
                if isinstance(event, EpochStart):
                    self._epoch_started(event)
                elif isinstance(event, StepEvent):
                    self._step(event)
                elif isinstance(event, EpochRecord):
                    self._epoch_finished(trainer, event)
                    if trainer.stopped_early():
                        self._event("early_stopping", f"stopped after epoch {event.epoch}: no "
                                    "lower validation loss for "
                                    f"{inputs.config.early_stopping_patience} epoch(s)",
                                    {"epoch_index": event.epoch})
                    elif event.epoch + 1 < epochs:
                        self._boundary(event.epoch, plan=True)
                        self._begin_epoch(event.epoch + 1)
        except BudgetExhaustedError as exc:  # stop here rather than exceed the CO2 budget
            if not self.rho.done:  # nothing trained: the job fails, naming the budget
                raise
            stopped_early = f"CO2 budget: {exc}"
            self._event("co2_budget", f"stopped early: {exc}", level="warning")
        if trainer.stopped_early():
            stopped_early = "early stopping: the validation loss stopped improving"
        return stopped_early

    # -- per-epoch pieces ------------------------------------------------------------------
    def _boundary(self, finished: int | None, *, plan: bool = False) -> None:
        """Between epochs (``finished`` recorded; None before this run's first): pause here if
        asked to (raises `JobPaused`). With ``plan`` the carbon planner may ask first (its wait
        is a pause that `service.pausing.resume_due` ends at the planned restart)."""
        if plan and finished is not None:
            decision = self.rho.decide(finished + 1, may_wait=True)
            if not decision.run_now:
                self.rho.forget(finished + 1)  # decided afresh when the job resumes
                self._write("asking for a carbon pause", lambda: ask_carbon_pause(
                    self.factory, self.job_id, decision))
        if self._write("checking for a pause", lambda: pause_if_asked(
                self.factory, self.job_id, self.me.name, finished)):
            log.info("job %s: paused at the epoch boundary", self.job_id, extra={"job_id": self.job_id})
            raise JobPaused

    def _begin_epoch(self, epoch: int) -> None:
        """Before the Trainer starts ``epoch``: decide its rho (the Trainer then asks `self.rho`,
        which answers the same decision) and start its energy meter at the decision's intensity,
        so that the epoch's importance probe and selection are measured too."""
        decision = self.rho.decide(epoch)
        self.meter.start(decision.reading.carbon_intensity_g_per_kwh)

    def _event(self, type_: str, message: str, data: dict[str, Any] | None = None,
               level: str = "info") -> None:
        def write() -> None:
            with self._session() as session:
                append_event(session, self.job_id, type_, message, level=level, data=data)

        self._write(f"logging a {type_} event", write)
        log.log(logging.getLevelNamesMapping().get(level.upper(), logging.INFO),
                "job %s: %s", self.job_id, message, extra={"job_id": self.job_id})

    def _epoch_started(self, event: EpochStart) -> None:
        decision = self.rho.decide(event.epoch)
        for fallback in self.planning.fallbacks(self.rho.planner):
            self._event("carbon_fallback", fallback.message, fallback.to_dict(), level="warning")
        for note in decision.notes:
            self._event("carbon_note", note, level="warning")
        self._event("epoch_start", f"epoch {event.epoch} started at rho {event.rho:.2f} "
                    f"with {len(event.selected)} tensors",
                    {"epoch_index": event.epoch, "rho": event.rho,
                     "selected_tensor_count": len(event.selected),
                     "predicted_step_flops": event.predicted_step_flops,
                     "full_step_flops": event.full_step_flops,
                     "carbon": decision.reading.to_dict(), "plan": decision.to_dict()})

    def _step(self, event: StepEvent) -> None:
        METRICS.stepped(self.job_id, event.epoch, event.step)
        now = time.monotonic()
        if now - self.last_progress < PROGRESS_EVERY_SECONDS:
            return
        self.last_progress = now
        message = f"epoch {event.epoch} step {event.step} loss {event.loss:.4f}"
        log.info("job %s: %s", self.job_id, message, extra={"job_id": self.job_id})
        try:  # best effort: training does not wait for the database to log progress
            with self._session() as session:
                append_event(session, self.job_id, "progress", message,
                             data={"epoch_index": event.epoch, "step": event.step,
                                   "loss": event.loss})
        except OperationalError:
            log.warning("job %s: progress event dropped, database unreachable", self.job_id)

    def _epoch_finished(self, trainer: Any, record: EpochRecord) -> None:
        reading = self.rho.decide(record.epoch).reading
        energy = epoch_energy(self.meter.stop(), reading.carbon_intensity_g_per_kwh
                              if reading else None, self.gpus)  # summed over the job's ranks
        METRICS.epoch_measured(energy.energy_kwh if energy else None,
                               energy.kg_co2 if energy else None)
        path = checkpoint_path(self.settings, self.job_id, record.epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(path)
        # In the store before the epoch is recorded: a recorded epoch always has its checkpoint.
        self.store.put_at(checkpoint_key(self.job_id, record.epoch), path)
        self._write(f"recording epoch {record.epoch}",
                    lambda: self._record(trainer, record, reading, energy))
        log.info("job %s: %s", self.job_id, epoch_line(record, energy),
                 extra={"job_id": self.job_id})
        self.rho.finished(record.epoch, record.wall_s, energy.kg_co2 if energy else None)
        if record.epoch >= CHECKPOINTS_KEPT:
            self.store.delete_prefix(checkpoint_key(self.job_id, record.epoch - CHECKPOINTS_KEPT))

    def _record(self, trainer: Any, record: EpochRecord, reading: Any, energy: Any) -> None:
        """The epoch's row, ``last_finished_epoch`` and the epoch's downloadable checkpoint, in
        one transaction, if the job is ours."""
        with self._session() as session:
            job = session.scalar(select(Job).where(Job.id == self.job_id).with_for_update())
            if job is None or job.status != JobStatus.RUNNING.value or \
                    job.lease_owner != self.me.name:
                raise JobStopped
            record_epoch(session, job, record, EpochMeasurement(
                carbon_intensity_g_per_kwh=reading.carbon_intensity_g_per_kwh if reading else None,
                carbon_intensity_source=reading.source if reading else None,
                energy_kwh=energy.energy_kwh if energy else None,
                kg_co2=energy.kg_co2 if energy else None,
                energy_is_estimate=energy.is_estimate if energy else True))
            save_epoch_checkpoint(session, self.store, job, trainer, record.epoch)
            if record.rho > 0 and self.examples:  # the planner's next estimates (per example)
                record_throughput(session, self.me.gpu_class, self.model,
                                  record.wall_s / record.rho / self.examples)

    def _finish(self, trainer: Any, inputs: Any, stopped_early: str | None) -> None:
        def read_totals() -> Any:
            with self._session() as session:
                return session.execute(select(
                    func.count(), func.sum(JobEpoch.executed_flops), func.sum(JobEpoch.full_ft_flops),
                    func.sum(JobEpoch.energy_kwh), func.sum(JobEpoch.kg_co2))
                    .where(JobEpoch.job_id == self.job_id)).one()

        totals = self._write("summing the epochs", read_totals)
        result: dict[str, Any] = {
            "epochs": int(totals[0]), "executed_flops": float(totals[1] or 0),
            "full_ft_flops": float(totals[2] or 0), "energy_kwh": float(totals[3] or 0),
            "kg_co2": float(totals[4] or 0),  # tokens seen: every epoch reads every example
            "trained_tokens": int(totals[0]) * sum(len(e.input_ids) for e in inputs.examples)}
        if stopped_early:
            result["stopped_early"] = stopped_early
        result.update(evaluations(trainer, inputs))
        if self.keeper.stop.is_set():
            raise JobStopped

        def succeed() -> None:
            with self._session() as session:
                job = session.scalar(select(Job).where(Job.id == self.job_id).with_for_update())
                if job is None or job.status != JobStatus.RUNNING.value or \
                        job.lease_owner != self.me.name:
                    raise JobStopped
                facts = card_facts(session, job, self.me.gpu_class, self.me.country_iso3)
                result["artifacts"] = save_outputs(session, self.store, job, trainer,
                                                   inputs.tokenizer, result, facts)
                slots.release(session, self.job_id)
                leases.clear(job)
                leases.finish_quietly(session, job, JobStatus.SUCCEEDED, result=result,
                                      message="training finished")

        self._write("storing the outputs", succeed)
        log.info("job %s succeeded: %s", self.job_id, result_line(result),
                 extra={"job_id": self.job_id})
