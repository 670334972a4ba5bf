"""The scheduler loop notes the grid's intensity at submission (the c_ref of the "cleaner times"
saving) once per job, per the job's region, before it dispatches it; a failing provider never
touches the job and the note is retried on the next pass."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from greentrainer_carbon.errors import ProviderError
from greentrainer_carbon.readings import CarbonReading
from service.db import session_scope
from service.models import Job, JobEvent
from service.pool.loop import tick
from service.pool.submission import note_submission_intensities
from service.savings import SUBMISSION_EVENT
from service.settings import PoolSettings
from tests.pool.test_dispatch import factory, job, postgres, slot, team  # noqa: F401

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def by_region(region: str | None) -> CarbonReading:
    return CarbonReading({"FR": 40.0, None: 250.0}[region], NOW, f"test:{region}")


def notes(factory: sessionmaker[Session], job_id: str) -> list[dict[str, object]]:  # noqa: F811
    with session_scope(factory) as session:
        return [e.data for e in session.scalars(select(JobEvent).where(
            JobEvent.job_id == job_id, JobEvent.type == SUBMISSION_EVENT))]


def test_each_new_job_is_noted_once_with_its_regions_intensity(
        factory: sessionmaker[Session]) -> None:  # noqa: F811
    with session_scope(factory) as session:
        owner = team(session)
        plain, french = job(session, owner), job(session, owner, region="FR")
        finished = job(session, owner, status="succeeded")
        trained = job(session, owner, status="running", last_finished_epoch=0)
    assert note_submission_intensities(factory, by_region) == 2
    assert notes(factory, plain) == [{"carbon_intensity_g_per_kwh": 250.0, "source": "test:None"}]
    assert notes(factory, french) == [{"carbon_intensity_g_per_kwh": 40.0, "source": "test:FR"}]
    assert notes(factory, finished) == notes(factory, trained) == []
    assert note_submission_intensities(factory, by_region) == 0  # never twice


def test_a_failing_provider_leaves_the_job_alone_and_is_retried(
        factory: sessionmaker[Session]) -> None:  # noqa: F811
    def down(region: str | None) -> CarbonReading:
        raise ProviderError("static", "unavailable")

    with session_scope(factory) as session:
        job_id = job(session, team(session))
    assert note_submission_intensities(factory, down) == 0
    with session_scope(factory) as session:
        assert session.get_one(Job, job_id).status == "queued"
    assert note_submission_intensities(factory, by_region) == 1
    assert len(notes(factory, job_id)) == 1


def test_the_loop_notes_a_job_before_dispatching_it(factory: sessionmaker[Session]) -> None:  # noqa: F811
    sent: list[str] = []
    with session_scope(factory) as session:
        job_id = job(session, team(session), gpu_class="cpu")
        slot(session, "cpu")
    tick(factory, PoolSettings(), lambda job_id, _: sent.append(job_id), None, by_region)
    assert sent == [job_id]
    assert [n["carbon_intensity_g_per_kwh"] for n in notes(factory, job_id)] == [250.0]
