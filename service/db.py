"""Engine, sessions and the schema gate: the app refuses an un-migrated database.

Alembic is driven from here (not only from alembic.ini) so that `greentrainer migrate` works from
any directory and from an installed package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.errors import SchemaNotMigrated

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIGRATE_COMMAND = "greentrainer migrate"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(database_url: str, *, pool_size: int = 10, pool_timeout: float = 10.0) -> Engine:
    """An engine for Postgres or SQLite; a SQLite file's folder is created if missing."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10},
                               pool_size=pool_size, max_overflow=pool_size,
                               pool_timeout=pool_timeout)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping (it costs a round trip per request): a connection broken by a database restart
    # fails one request, invalidates the pool, and the next request reconnects.
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800,
                         pool_timeout=pool_timeout)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return ",".join(sorted(heads))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) if heads else None


def check_schema(engine: Engine) -> None:
    """Raise `SchemaNotMigrated`, naming the fixing command, unless the DB is at head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        raise SchemaNotMigrated(
            f"the database {where} is at migration {current or 'none (empty)'}, "
            f"the service needs {head}: run `{MIGRATE_COMMAND}` "
            "(with the same GREENTRAINER_DATABASE_URL) and start again"
        )
