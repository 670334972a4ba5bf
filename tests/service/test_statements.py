"""How many SQL statements the hottest requests send. Each is a round trip that costs API and
database CPU (`benchmarks/api_cpu.py`), so adding one to POST /jobs or GET /jobs/{id} must be a
deliberate change of these numbers, not an accident of a refactoring."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.service.conftest import Api


@contextmanager
def statements_sent(api: Api) -> Iterator[list[str]]:
    """The statements the app's engine sends inside the block (BEGIN and COMMIT are not
    statements here: the driver sends them around each transaction)."""
    sent: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement.split(None, 1)[0])

    engine = api.app.state.context.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_submitting_a_job_takes_four_statements(api: Api) -> None:
    """The key with the caller's sign-in bucket, the data set, the job, its two events."""
    team = api.new_team()
    dataset = api.upload(team)
    key = {"Idempotency-Key": secrets.token_hex(8)}
    with statements_sent(api) as sent:
        r = api.submit(team, dataset, headers=key)
    assert r.status_code == 201, r.text
    assert sent == ["SELECT", "SELECT", "INSERT", "INSERT"]

    with statements_sent(api) as sent:  # a retry: the INSERT finds the key, then the job is read
        again = api.submit(team, dataset, headers=key)
    assert again.status_code == 200 and again.json() == r.json()
    assert sent == ["SELECT", "SELECT", "INSERT", "SELECT"]


def test_reading_a_job_takes_two_statements(api: Api) -> None:
    """The key with the caller's sign-in bucket, then the job."""
    team = api.new_team()
    job_id = api.job_id(team)
    with statements_sent(api) as sent:
        r = api.client.get(f"/jobs/{job_id}", headers=team)
    assert r.status_code == 200, r.text
    assert sent == ["SELECT", "SELECT"]
