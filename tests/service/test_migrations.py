"""Migrations upgrade an empty database and downgrade cleanly, agree with the models, and the
app refuses to start on an un-migrated database, naming the command that fixes it."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from service.app import create_app
from service.cli import migrate_main, serve_main
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
