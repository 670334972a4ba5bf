"""Failed sign-ins are rate limited per client address: after a burst of wrong keys the API's
bearer auth and the dashboard's sign-in form answer 429 with Retry-After, and the bucket refills."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from service.errors import TooManyFailedSignIns
from service.signin_limit import FailedSignInLimiter
from tests.hardening.conftest import live_api
from tests.service.conftest import Api

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
    # The address is blocked for every key until its bucket refills: guessing costs time.
    assert strict_api.client.get("/jobs", headers=team).status_code == 429


def test_missing_keys_and_good_keys_do_not_use_up_the_bucket(strict_api: Api) -> None:
    team = strict_api.new_team()
    for _ in range(BURST * 3):
        assert strict_api.client.get("/jobs").status_code == 401
        assert strict_api.client.get("/jobs", headers=team).status_code == 200


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


def test_the_bucket_refills_one_sign_in_per_refill_period() -> None:
    now = [0.0]
    limiter = FailedSignInLimiter(burst=2, refill_seconds=10, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    with pytest.raises(TooManyFailedSignIns) as caught:
        limiter.check("a")
    assert caught.value.retry_after_s == 10
    limiter.check("b")  # other addresses are not affected
    now[0] = 9.0
    with pytest.raises(TooManyFailedSignIns) as caught:
        limiter.check("a")
    assert caught.value.retry_after_s == 1
    now[0] = 10.0
    limiter.check("a")
