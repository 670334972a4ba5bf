"""Readiness checks: the database answers, is migrated and takes writes, and the broker answers."""

from __future__ import annotations

from sqlalchemy import Engine, text

from service.db import check_schema
from service.errors import SchemaNotMigrated

# A write that changes nothing, rolled back: a read-only database (a standby promoted the wrong
# way, default_transaction_read_only, a full or read-only SQLite file) refuses it. Every row of
# alembic_version is the schema's revision, so no other transaction waits on a changed row.
_WRITE_PROBE = text("UPDATE alembic_version SET version_num = version_num")


def check_database(engine: Engine) -> str | None:
    """None when the database answers, is at the latest migration and takes a write, else the
    problem (a database that answers reads but refuses writes once passed as ready)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        check_schema(engine)
        with engine.connect() as connection:
            try:
                connection.execute(_WRITE_PROBE)
            except Exception as exc:  # noqa: BLE001 - any refusal: the message says which
                return f"database refuses writes: {type(exc).__name__}: {exc}".splitlines()[0]
            finally:
                connection.rollback()
    except SchemaNotMigrated as exc:
        return exc.message
    except Exception as exc:  # any driver error means "not ready"; the message says which
        return f"database unreachable: {type(exc).__name__}: {exc}".splitlines()[0]
    return None


def check_broker(broker_url: str | None, *, timeout_seconds: float = 1.0) -> str | None:
    """None when the broker answers (or none is configured: embedded mode), else the problem."""
    if not broker_url or not broker_url.startswith(("redis://", "rediss://")):
        return None
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=timeout_seconds,
                                  socket_connect_timeout=timeout_seconds)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"broker unreachable: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None
