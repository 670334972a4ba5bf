"""Retry behaviour of the HTTP layer: 429 with Retry-After, 5xx backoff, timeouts, bad JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from greentrainer_carbon.errors import ProviderHTTPError, ProviderResponseError
from greentrainer_carbon.retrying_http import RetryingHTTP, retry_after_seconds

from .conftest import Answer

OK = Answer(body={"ok": 1})


def test_429_waits_the_retry_after_seconds_then_succeeds(fake_server, sleeps):
    fake_server.add("/x", Answer(429, {"message": "slow down"}, {"Retry-After": "7"}), OK)
    client = RetryingHTTP("p", fake_server.url, sleep=sleeps.append, backoff_s=0.5)
    assert client.get_json("/x") == {"ok": 1}
    assert sleeps == [7.0] and fake_server.hits("/x") == 2


def test_5xx_backs_off_exponentially_and_gives_up_after_the_last_retry(fake_server, sleeps):
    fake_server.add("/x", Answer(503, {"message": "down"}))
    client = RetryingHTTP("p", fake_server.url, sleep=sleeps.append, backoff_s=0.5, max_retries=3)
    with pytest.raises(ProviderHTTPError, match="503.*after 4 attempts"):
        client.get_json("/x")
    assert sleeps == [0.5, 1.0, 2.0] and fake_server.hits("/x") == 4


def test_retry_after_is_capped(fake_server, sleeps):
    fake_server.add("/x", Answer(429, {}, {"Retry-After": "3600"}), OK)
    RetryingHTTP("p", fake_server.url, sleep=sleeps.append, max_backoff_s=30).get_json("/x")
    assert sleeps == [30]


def test_timeout_is_retried_then_reported(fake_server, sleeps):
    fake_server.add("/slow", Answer(body={"ok": 1}, delay_s=0.5))
    client = RetryingHTTP("p", fake_server.url, timeout_s=0.1, max_retries=1, sleep=sleeps.append)
    with pytest.raises(ProviderHTTPError, match="timed out"):
        client.get_json("/slow")
    assert len(sleeps) == 1


def test_body_that_is_not_json_is_a_response_error(fake_server, sleeps):
    fake_server.add("/x", Answer(raw=b"<html>maintenance</html>"))
    with pytest.raises(ProviderResponseError, match="not JSON"):
        RetryingHTTP("p", fake_server.url, sleep=sleeps.append).get_json("/x")


def test_connection_refused_is_retried_and_reported(sleeps):
    client = RetryingHTTP(
        "p", "http://127.0.0.1:9", max_retries=2, timeout_s=1, sleep=sleeps.append
    )
    with pytest.raises(ProviderHTTPError, match="connection failed"):
        client.get_json("/x")
    assert len(sleeps) == 2


def test_retry_after_accepts_an_http_date():
    now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=42), usegmt=True), now) == 42
    assert retry_after_seconds("soon", now) is None
