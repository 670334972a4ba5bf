"""Fault class: a health check that tests less than the service needs. /readyz said ready while
the database refused writes (read-only); it now checks a write (rolled back)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.hardening.conftest import live_api
from tests.service.conftest import PostgresDatabases, postgres  # noqa: F401 (fixture)


def _read_only(url: str, on: bool) -> None:
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'ALTER DATABASE "{parsed.database}" SET '
                           f"default_transaction_read_only = {'on' if on else 'off'}")


def test_readyz_is_503_while_the_database_is_read_only(postgres: PostgresDatabases,  # noqa: F811
                                                      tmp_path: Path) -> None:
    url = postgres.create()
    with live_api(tmp_path, database_url=url) as api:
        assert api.client.get("/readyz").status_code == 200
        _read_only(url, True)
        try:
            api.app.state.context.engine.dispose()  # new connections read the new default
            r = api.client.get("/readyz")
            assert r.status_code == 503, r.text
            assert "refuses writes" in r.text and "read-only" in r.text
        finally:
            _read_only(url, False)
        api.app.state.context.engine.dispose()
        assert api.client.get("/readyz").status_code == 200
