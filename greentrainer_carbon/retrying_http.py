"""HTTP plumbing shared by the online providers: retries with backoff, Retry-After, JSON errors.

NB: request headers (tokens, basic auth) never enter an exception message or a log record;
only the method, the path and the status do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from greentrainer_carbon.errors import ProviderHTTPError, ProviderResponseError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def retry_after_seconds(header: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP date); None if absent/bad."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_detail(response: httpx.Response) -> str:
    """A short reason from an error body ({"error": {"message": ...}} or {"message": ...})."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:200]
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])[:200]
    return response.reason_phrase or "error"


class RetryingHTTP:
    """GET JSON with a timeout, retrying timeouts, connection errors, 429 and 5xx.

    Backoff: Retry-After when the server sends it (capped at `max_backoff_s`), otherwise
    `backoff_s * 2**attempt`. `sleep` is injectable so tests can record the waits.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        client: httpx.Client | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.sleep = sleep
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout_s))

    def __repr__(self) -> str:
        return f"RetryingHTTP(provider={self.provider!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self.client.close()

    def _wait(self, attempt: int, response: httpx.Response | None) -> None:
        delay = retry_after_seconds(response.headers.get("retry-after")) if response else None
        if delay is None:
            delay = self.backoff_s * (2**attempt)
        self.sleep(min(delay, self.max_backoff_s))

    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        retry_on_401: Callable[[], Mapping[str, str]] | None = None,
    ) -> Any:
        """Return the decoded JSON body of GET base_url/path.

        Raises ProviderHTTPError (4xx, or 5xx/429/timeouts after the last retry) and
        ProviderResponseError (body is not JSON). `retry_on_401` returns fresh headers once.
        """
        url = f"{self.base_url}/{path.lstrip('/')}"
        last: str = "no attempt"
        status: int | None = None
        refreshed = False
        attempt = 0
        while attempt <= self.max_retries:
            response: httpx.Response | None = None
            try:
                response = self.client.get(url, params=params, headers=headers, auth=auth)
            except httpx.TimeoutException:
                last, status = "timed out", None
            except httpx.TransportError as exc:
                last, status = f"connection failed ({type(exc).__name__})", None
            else:
                if response.status_code == 401 and retry_on_401 and not refreshed:
                    refreshed = True
                    headers = retry_on_401()
                    continue
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise ProviderResponseError(
                            self.provider, f"GET {path}: body is not JSON"
                        ) from exc
                status = response.status_code
                last = f"HTTP {status}: {_error_detail(response)}"
                if status not in RETRYABLE_STATUS:
                    raise ProviderHTTPError(self.provider, f"GET {path}: {last}", status)
            log.info("%s GET %s failed (%s), attempt %d", self.provider, path, last, attempt + 1)
            if attempt < self.max_retries:
                self._wait(attempt, response)
            attempt += 1
        raise ProviderHTTPError(
            self.provider, f"GET {path}: {last} after {self.max_retries + 1} attempts", status
        )
