"""Engine, sessions and the schema gate: the app refuses an un-migrated database.

Alembic is driven from here (not only from alembic.ini) so that `greentrainer migrate` works from
any directory and from an installed package.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import anyio
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import ColumnElement, Engine, String, any_, bindparam, create_engine, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from service.errors import SchemaNotMigrated

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIGRATE_COMMAND = "greentrainer migrate"
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def pool_capacity(pool_size: int) -> int:
    """Connections an engine from `make_engine` may open: ``pool_size``, each opened when first
    needed and then kept.

    No overflow: SQLAlchemy closes an overflow connection as soon as it is returned to a pool
    whose ``pool_size`` idle places are taken, and under a burst that happens many times a
    second, so connections were opened and closed again all the time. Opening one costs
    Postgres a process start (8-10 ms of CPU on the development machine): at 64 requests in
    flight against 2 API processes with 10 kept plus 10 overflow each, 127 connections were
    opened per 1,000 requests and Postgres spent 1.5 ms of CPU per request instead of 0.5
    (benchmarks/results/load_burst.md, run 8). Requests beyond the pool wait for a connection
    (`ConnectionPermits`) instead.
    """
    return pool_size


def make_engine(database_url: str, *, pool_size: int = 10, pool_timeout: float = 10.0) -> Engine:
    """An engine for Postgres or SQLite; a SQLite file's folder is created if missing. It opens
    at most `pool_capacity(pool_size)` connections."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10},
                               pool_size=pool_capacity(pool_size), max_overflow=0,
                               pool_timeout=pool_timeout)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping (it costs a round trip per request): a connection broken by a database restart
    # fails one request, invalidates the pool, and the next request reconnects.
    return create_engine(url, pool_size=pool_capacity(pool_size), max_overflow=0,
                         pool_recycle=1800, pool_timeout=pool_timeout)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def one_of(session: Session, column: ColumnElement[str] | InstrumentedAttribute[str],
           values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN values``: on Postgres ``column = ANY(:values)``, one array parameter, so the
    statement stays short and psycopg caches and prepares it. An IN of 200 values is expanded
    by SQLAlchemy and, too long for psycopg's cache, parsed again on every call."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    return column.in_(values)


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


_HOLDING: ContextVar[bool] = ContextVar("greentrainer_db_permit_held", default=False)


class ConnectionPermits:
    """At most one request per pooled connection holds a DB session at a time.

    Why: FastAPI runs a request's sync dependencies and its endpoint as separate trips to one
    thread pool (40 threads). A request that has checked out its connection (authentication
    done) then waits for a thread to run its endpoint; if newer requests take every thread and
    block in the pool waiting for a connection, the connections' owners never get a thread
    back, and everything stalls until the pool timeout. Under a 64-request burst this made
    the API's p99 10.3 s while its median was 17 ms. With a permit taken (asynchronously, on
    the event loop, before the session exists) per connection, every request holding a session
    can get its connection, so the cycle cannot form; the rest queue here without using a
    thread, and one that waits longer than the pool timeout is answered 503 as before.
    """

    def __init__(self, total: int, timeout_s: float) -> None:
        self.total, self.timeout_s = total, timeout_s
        self._semaphore = anyio.Semaphore(total)

    @staticmethod
    def held_here() -> bool:
        """Whether the code running now (this task, or a thread it runs work in) holds a permit:
        every pool checkout of an API process must (tests check it with a checkout listener)."""
        return _HOLDING.get()

    @property
    def available(self) -> int:
        """Permits not held now."""
        return self._semaphore.value

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        try:
            with anyio.fail_after(self.timeout_s):
                await self._semaphore.acquire()
        except TimeoutError:
            raise sqlalchemy.exc.TimeoutError(
                f"no database connection free within {self.timeout_s:g} s "
                f"({self.total} in use by other requests)") from None
        token = _HOLDING.set(True)
        try:
            yield
        finally:
            try:
                _HOLDING.reset(token)
            except ValueError:  # exited in another context than entered: only this flag moves
                _HOLDING.set(False)
            self._semaphore.release()

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in the request thread pool, holding a permit taken first, on the
        event loop: how any code of an API process that uses the pool outside `SessionDep`
        (dashboard pages, event-stream polls, /readyz, /metrics) gets its connection."""
        async with self.hold():
            return await anyio.to_thread.run_sync(func, *args)


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


# How long `greentrainer worker` and `scheduler` wait at start for an unreachable database.
STARTUP_DATABASE_PATIENCE_S = 120.0


def check_schema(engine: Engine, patience_s: float = 0.0) -> None:
    """Raise `SchemaNotMigrated`, naming the fixing command, unless the DB is at head. While the
    database is unreachable the check is tried again for up to ``patience_s`` (a worker or
    scheduler started while Postgres restarts waits for it rather than exiting: found by
    benchmarks/chaos.py); after that the `sqlalchemy.exc.OperationalError` is raised."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            current = current_revision(engine)
            break
        except sqlalchemy.exc.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise
            if patience_s:
                logging.getLogger("service.db").warning(
                    "database unreachable (%s); trying again for up to %.0f s",
                    str(exc.orig).strip().splitlines()[0], deadline - time.monotonic())
            time.sleep(1.0)
    head = head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        raise SchemaNotMigrated(
            f"the database {where} is at migration {current or 'none (empty)'}, "
            f"the service needs {head}: run `{MIGRATE_COMMAND}` "
            "(with the same GREENTRAINER_DATABASE_URL) and start again"
        )
