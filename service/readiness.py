"""Readiness checks: the database answers and is migrated, and the broker answers."""

from __future__ import annotations

from sqlalchemy import Engine, text

from service.db import check_schema
from service.errors import SchemaNotMigrated


def check_database(engine: Engine) -> str | None:
    """None when the database answers and is at the latest migration, else the problem."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        check_schema(engine)
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
