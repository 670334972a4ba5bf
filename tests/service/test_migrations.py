"""Migrations upgrade an empty database and downgrade cleanly, agree with the models, and the
app refuses to start on an un-migrated database, naming the command that fixes it."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from greentrainer.commands.serve import migrate_main, serve_main
from service.app import create_app
from service.db import downgrade, head_revision, make_engine, upgrade
from service.errors import SchemaNotMigrated
from service.models import Base
from service.settings import Settings

MODEL_TABLES = set(Base.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_and_downgrade_removes_them(empty_database_url: str) -> None:
    assert _tables(empty_database_url) == set()
    upgrade(empty_database_url)
    assert _tables(empty_database_url) == MODEL_TABLES | {"alembic_version"}
    downgrade(empty_database_url, "base")
    assert _tables(empty_database_url) == {"alembic_version"}
    upgrade(empty_database_url)  # and back up again on the same database
    assert _tables(empty_database_url) == MODEL_TABLES | {"alembic_version"}


def test_migrations_match_the_models(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "models changed without a migration: run alembic revision"


def test_app_refuses_an_unmigrated_database_and_names_the_fix(empty_database_url: str) -> None:
    with pytest.raises(SchemaNotMigrated, match="run `greentrainer migrate`"):
        create_app(Settings(database_url=empty_database_url))


def test_app_refuses_a_database_left_at_an_older_revision(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    downgrade(empty_database_url, "base")
    with pytest.raises(SchemaNotMigrated, match=f"needs {head_revision()}"):
        create_app(Settings(database_url=empty_database_url))


def test_serve_exits_with_the_fix_on_an_unmigrated_database(
        empty_database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_main(["--database-url", empty_database_url, "--port", "1"]) == 2
    assert "greentrainer migrate" in capsys.readouterr().err


def test_migrate_command_brings_the_database_to_head(
        empty_database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate_main(["--database-url", empty_database_url]) == 0
    assert f"at migration {head_revision()}" in capsys.readouterr().out
    create_app(Settings(database_url=empty_database_url)).state.context.engine.dispose()


def test_the_signin_failures_migration_steps_down_to_0002_and_back(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    downgrade(empty_database_url, "0002")
    assert "signin_failures" not in _tables(empty_database_url)
    assert "worker_slots" in _tables(empty_database_url)  # the step removes only its own table
    upgrade(empty_database_url, "0003")
    assert "signin_failures" in _tables(empty_database_url)


def _job_indexes(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {index["name"] for index in inspect(engine).get_indexes("jobs")}
    finally:
        engine.dispose()


def test_the_queue_index_migration_steps_down_to_0003_and_back(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0004")
    assert {"ix_jobs_status_created_at_id"} <= _job_indexes(empty_database_url)
    assert "ix_jobs_status" not in _job_indexes(empty_database_url)
    downgrade(empty_database_url, "0003")
    assert "ix_jobs_status" in _job_indexes(empty_database_url)
    assert "ix_jobs_status_created_at_id" not in _job_indexes(empty_database_url)
    upgrade(empty_database_url, "0004")
    assert "ix_jobs_status_created_at_id" in _job_indexes(empty_database_url)


def test_the_team_queue_index_migration_steps_down_to_0004_and_back(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    indexes = _job_indexes(empty_database_url)
    assert "ix_jobs_status_team_id_created_at_id" in indexes
    assert "ix_jobs_status_created_at_id" not in indexes
    downgrade(empty_database_url, "0004")
    indexes = _job_indexes(empty_database_url)
    assert "ix_jobs_status_created_at_id" in indexes
    assert "ix_jobs_status_team_id_created_at_id" not in indexes
    upgrade(empty_database_url)
    assert "ix_jobs_status_team_id_created_at_id" in _job_indexes(empty_database_url)


def test_the_month_co2_migration_adds_up_the_epochs_already_recorded(empty_database_url: str) -> None:
    """0006 fills `team_month_co2` from the epochs recorded before it: per team and month (UTC),
    epochs without CO2 left out; downgrading drops the table."""
    from datetime import timedelta

    from sqlalchemy import delete, select

    from service.db import make_session_factory
    from service.models import JobEpoch, TeamMonthCo2, month_key, utcnow
    from tests.pool.test_dispatch import job, team

    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    now, earlier = utcnow(), utcnow().replace(day=1) - timedelta(days=2)
    try:
        with make_session_factory(engine).begin() as session:
            a, b = team(session), team(session)
            for owner, kgs in ((a, [(0.5, now), (0.25, now), (2.0, earlier), (None, now)]),
                               (b, [(1.0, earlier)])):
                done = job(session, owner, status="succeeded")
                for index, (kg, when) in enumerate(kgs):
                    session.add(JobEpoch(job_id=done, epoch_index=index, rho=1.0,
                                         selected_tensor_count=1, selected_tensor_names=[],
                                         predicted_flops=1, executed_flops=1, full_ft_flops=1,
                                         wall_seconds=1, kg_co2=kg, created_at=when))
        with engine.begin() as connection:  # as before 0006: no totals yet
            connection.execute(delete(TeamMonthCo2))
        downgrade(empty_database_url, "0005")
        assert "team_month_co2" not in _tables(empty_database_url)
        upgrade(empty_database_url)
        with engine.connect() as connection:
            totals = {(t, m): kg for t, m, kg in connection.execute(
                select(TeamMonthCo2.team_id, TeamMonthCo2.month, TeamMonthCo2.kg_co2))}
    finally:
        engine.dispose()
    assert totals == {(a, month_key(now)): 0.75, (a, month_key(earlier)): 2.0,
                      (b, month_key(earlier)): 1.0}
