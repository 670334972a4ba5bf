"""The carbon plan's pause between epochs, through the runner: the planner says the next epoch
should wait for cleaner hours, the job pauses at the boundary (checkpoint kept, slot freed) with
the planned restart, the scheduler's `resume_due` re-queues it then, and the resumed run
finishes every epoch once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from greentrainer_carbon.energy import EnergyModel
from greentrainer_carbon.forecaster import Forecaster
from greentrainer_carbon.history import MemoryHistory
from service.jobs import transition
from service.models import JobEpoch, JobEvent, WorkerSlot, utcnow
from service.pausing import resume_due
from service.pool.carbon_plan import CarbonPlanning
from service.states import JobStatus
from tests.scripted_carbon import DirtyThenClean
from tests.worker.conftest import Bench
from worker.runner import Job, run_job


class GridPlanning(CarbonPlanning):
    """The worker's carbon side on a scripted grid (no resume cost: the tiny epochs are short)."""

    def __init__(self, bench: Bench, grid: DirtyThenClean) -> None:
        super().__init__(bench.settings, bench.factory)
        self.grid = grid

    @property
    def energy(self) -> EnergyModel:
        return EnergyModel(resume_s=0.0)

    def forecaster(self, region: str | None) -> Forecaster:
        return Forecaster(self.grid, MemoryHistory(), self.region(region))


def run(bench: Bench, job_id: str, grid: DirtyThenClean) -> str:
    return run_job(job_id, factory=bench.factory, settings=bench.settings, pool=bench.pool,
                   store=bench.store, me=bench.me, planning=GridPlanning(bench, grid))


def test_the_carbon_plan_pauses_between_epochs_and_the_loop_resumes_it_at_the_restart(
        bench: Bench) -> None:
    deadline = utcnow() + timedelta(hours=12)
    job_id = bench.job(rho_policy={"type": "fixed", "rho": 0.5, "deadline": deadline.isoformat()},
                       deadline=deadline)
    dirty_for_2h = DirtyThenClean(2)
    assert run(bench, job_id, dirty_for_2h) == "paused"
    job = bench.read(job_id)
    assert job.status == "paused" and job.pause_reason == "carbon"
    assert job.resume_at is not None and job.resume_at >= utcnow() + timedelta(hours=1.4)
    with bench.factory() as session:
        assert session.scalar(select(WorkerSlot.job_id).where(WorkerSlot.job_id == job_id)) is None
        wait = session.scalar(select(JobEvent).where(JobEvent.job_id == job_id,
                                                     JobEvent.type == "carbon_wait"))
        assert wait is not None and "cleaner hours are forecast" in wait.message
        assert wait.data["plan"]["run_now"] is False  # type: ignore[index]
    with bench.factory.begin() as session:  # not yet: the restart has not come
        assert resume_due(session, utcnow()) == []
    with bench.factory.begin() as session:
        assert resume_due(session, job.resume_at + timedelta(seconds=1)) == [job_id]
    with bench.factory.begin() as session:  # the dispatcher starts it on a free worker
        row = session.get(Job, job_id)
        assert row is not None and row.status == "queued"
        transition(session, row, JobStatus.RUNNING)
    assert run(bench, job_id, DirtyThenClean(0)) == "succeeded"
    with bench.factory() as session:
        done = [(e.epoch_index, e.rho) for e in session.scalars(
            select(JobEpoch).where(JobEpoch.job_id == job_id).order_by(JobEpoch.epoch_index))]
        types = list(session.scalars(select(JobEvent.type).where(JobEvent.job_id == job_id)))
    assert done == [(0, 0.5), (1, 0.5)]
    # "resumed" twice: re-queued by the loop, then restarted from the checkpoint by the worker.
    assert types.count("epoch") == 2 and types.count("carbon_wait") == 1
    assert types.count("resumed") == 2


def test_without_a_deadline_the_job_never_pauses_for_carbon(bench: Bench) -> None:
    job_id = bench.job(rho_policy={"type": "fixed", "rho": 0.5})
    assert run(bench, job_id, DirtyThenClean(2)) == "succeeded"
