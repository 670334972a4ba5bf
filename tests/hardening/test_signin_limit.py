"""Failed sign-ins are rate limited per client address and per key prefix: after a burst of
wrong keys the API's bearer auth and the dashboard's sign-in form answer wrong keys 429 with
Retry-After, and the bucket refills. Fault class (issue 24): trust of client-controlled input.
Valid keys are never locked out by an address's failures, and X-Forwarded-For is believed only
from configured proxies."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory, upgrade
from service.errors import TooManyFailedSignIns
from service.models import SignInFailure
from service.signin_limit import FailedSignInLimiter
from tests.hardening.conftest import live_api
from tests.service.conftest import Api, postgres  # noqa: F401 (fixture)

BURST = 5
WRONG = {"Authorization": "Bearer gt_wrong_key_000000000000000000000000000000"}


@pytest.fixture
def strict_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with live_api(tmp_path_factory.mktemp("strict"), signin_failure_burst=BURST,
                  signin_failure_refill_seconds=60) as api:
        yield api


def test_api_answers_429_with_retry_after_after_a_burst_of_wrong_keys(strict_api: Api) -> None:
    team = strict_api.new_team()
    for _ in range(BURST):
        assert strict_api.client.get("/jobs", headers=WRONG).status_code == 401
    r = strict_api.client.get("/jobs", headers=WRONG)
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json()["error"]["code"] == "too_many_failed_sign_ins"
    # Guessing costs time, but only wrong keys are refused: a valid key from the same address
    # (the admin's too) still works, so a neighbour guessing keys locks nobody out.
    assert strict_api.client.get("/jobs", headers=team).status_code == 200
    assert strict_api.client.get("/teams", headers=strict_api.admin).status_code == 200
    assert strict_api.client.get("/jobs", headers=WRONG).status_code == 429


def test_guessing_the_rest_of_a_known_key_prefix_locks_that_prefix_from_every_address(
        strict_api: Api) -> None:
    team = strict_api.new_team()
    key = team["Authorization"].removeprefix("Bearer ")
    guesses = [{"Authorization": f"Bearer {key[:10]}{'x' * (len(key) - 10 - len(str(n)))}{n}"}
               for n in range(BURST * 3)]
    answers = [strict_api.client.get("/jobs", headers=g).status_code for g in guesses]
    assert answers[:BURST] == [401] * BURST and set(answers[BURST:]) == {429}
    rows = _rows(strict_api.factory)
    assert rows[f"key:{key[:10]}"] < 1  # counted on the prefix too, also while refused
    r = strict_api.client.get("/jobs", headers=team)  # the key under attack waits as well
    assert r.status_code == 429 and "for this key" in r.json()["error"]["message"]
    other = strict_api.new_team()  # other keys do not
    assert strict_api.client.get("/jobs", headers=other).status_code == 200


def test_a_wrong_key_with_an_unknown_prefix_leaves_no_prefix_bucket(strict_api: Api) -> None:
    strict_api.client.get("/jobs", headers=WRONG)
    assert [a for a in _rows(strict_api.factory) if a.startswith("key:")] == []


def test_missing_keys_and_good_keys_do_not_use_up_the_bucket(strict_api: Api) -> None:
    team = strict_api.new_team()
    for _ in range(BURST * 3):
        assert strict_api.client.get("/jobs").status_code == 401
        assert strict_api.client.get("/jobs", headers=team).status_code == 200
    assert _rows(strict_api.factory) == {}  # neither wrote a bucket row


def _login(client: httpx.Client, key: str) -> httpx.Response:
    page = client.get("/dashboard/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text[:300]
    return client.post("/dashboard/login", data={"csrf_token": csrf.group(1), "api_key": key},
                       follow_redirects=False)


def test_dashboard_sign_in_form_answers_429_after_a_burst(strict_api: Api) -> None:
    with httpx.Client(base_url=str(strict_api.client.base_url), timeout=30) as client:
        for _ in range(BURST):
            assert _login(client, "gt_wrong").status_code == 401
        r = _login(client, "gt_wrong")
        assert r.status_code == 429, r.text[:300]
        assert int(r.headers["Retry-After"]) >= 1
        assert "too many failed sign-ins" in r.text


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database of each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'limit.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").create()
    upgrade(url)
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _rows(sessions: sessionmaker[Session]) -> dict[str, float]:
    with sessions() as session:
        return {row.address: row.tokens for row in session.scalars(select(SignInFailure))}


def test_the_bucket_refills_one_sign_in_per_refill_period(sessions: sessionmaker[Session]) -> None:
    now = [0.0]
    limiter = FailedSignInLimiter(burst=2, refill_seconds=10, clock=lambda: now[0])
    with sessions() as session:
        limiter.failed(session, "a")
        limiter.failed(session, "a")
        with pytest.raises(TooManyFailedSignIns) as caught:
            limiter.check(session, "a")
        assert caught.value.retry_after_s == 10
        limiter.check(session, "b")  # other addresses are not affected
        now[0] = 9.0
        with pytest.raises(TooManyFailedSignIns) as caught:
            limiter.check(session, "a")
        assert caught.value.retry_after_s == 1
        now[0] = 10.0
        limiter.check(session, "a")
        # The refill is computed by the database on the next failure: 1 token regained, 1 taken.
        limiter.failed(session, "a")
    assert _rows(sessions) == {"a": 0.0}


def test_concurrent_failures_from_many_threads_each_take_one_token(sessions: sessionmaker[Session]) -> None:
    # Every thread reads the full bucket before any writes: a read-modify-write in the
    # application would lose updates here; the database's upsert cannot.
    burst, threads = 40, 8
    limiter = FailedSignInLimiter(burst=burst, refill_seconds=3600, clock=lambda: 1_000.0)
    start = threading.Barrier(threads)

    def fail_five_times() -> None:
        with sessions() as session:
            start.wait()
            for _ in range(5):
                limiter.failed(session, "10.0.0.1")

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(fail_five_times) for _ in range(threads)]:
            future.result()
    assert _rows(sessions) == {"10.0.0.1": 0.0}
    with sessions() as session, pytest.raises(TooManyFailedSignIns):
        limiter.check(session, "10.0.0.1")


def test_a_clock_behind_the_last_failure_refills_nothing(sessions: sessionmaker[Session]) -> None:
    now = [100.0]
    limiter = FailedSignInLimiter(burst=5, refill_seconds=10, clock=lambda: now[0])
    with sessions() as session:
        limiter.failed(session, "a")
        now[0] = 40.0  # another API host whose clock runs a minute behind
        limiter.failed(session, "a")
        assert limiter.tokens(session, "a") == 3.0
        now[0] = 110.0  # ten seconds after the first failure: one token back
        assert limiter.tokens(session, "a") == 4.0


def test_rows_of_refilled_buckets_are_deleted_by_a_later_failure(sessions: sessionmaker[Session]) -> None:
    now = [0.0]
    limiter = FailedSignInLimiter(burst=3, refill_seconds=10, clock=lambda: now[0])
    with sessions() as session:
        limiter.failed(session, "old")
        now[0] = 29.0
        limiter.failed(session, "recent")
        now[0] = 31.0  # "old" is full again (3 tokens after 30 s); "recent" is not
        limiter.failed(session, "new")
    assert set(_rows(sessions)) == {"recent", "new"}
