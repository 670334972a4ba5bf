"""What the sync and the async client share: configuration, the description of each call
(`Call`), the retry rule, error mapping and the Server-Sent Events decoder. Neither does I/O
here; `_sync.py` and `_async.py` send the calls.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import httpx

from greentrainer.client._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    GreenTrainerError,
    error_from_response,
)
from greentrainer.client._types import Event

# The client's configuration is its own (it runs where the service does not, and never imports
# the service's Settings): these two variables, or the arguments of `Client`.
BASE_URL_ENV = "GREENTRAINER_BASE_URL"
API_KEY_ENV = "GREENTRAINER_API_KEY"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

# Statuses worth another try: the server or a proxy in front of it was overloaded, restarting or
# briefly unable to reach the database (503 with Retry-After). Every other 4xx is the request's
# fault and would fail again.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_DELAY_S = 20.0
# A stream sends a keep-alive comment every `sse_poll_seconds` (well under a second by default):
# a minute of silence means the connection is gone, and the stream reconnects.
STREAM_READ_TIMEOUT_S = 60.0

T = TypeVar("T")
Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


@dataclass(frozen=True)
class ClientOptions:
    base_url: str
    api_key: str | None
    timeout_s: float = 30.0
    max_retries: int = 3
    backoff_s: float = 0.5  # first retry's delay; doubled each time, jittered, at most 8 s

    @classmethod
    def resolve(cls, base_url: str | None, api_key: str | None, **rest: Any) -> ClientOptions:
        """Arguments first, then GREENTRAINER_BASE_URL / GREENTRAINER_API_KEY."""
        url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        key = api_key or os.environ.get(API_KEY_ENV) or None
        if not url.startswith(("http://", "https://")):
            raise GreenTrainerError(f"base URL {url!r} must start with http:// or https:// "
                                    f"(set {BASE_URL_ENV} or pass base_url)")
        return cls(base_url=url.rstrip("/"), api_key=key, **rest)

    def headers(self) -> dict[str, str]:
        from greentrainer.client import __version__

        headers = {"User-Agent": f"greentrainer-client/{__version__}", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def retry_delay_s(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1, 2, ...): the server's Retry-After
        when it sent one (capped), else exponential backoff with jitter."""
        if response is not None:
            after = retry_after_s(response.headers.get("Retry-After"))
            if after is not None:
                return min(after, MAX_RETRY_DELAY_S)
        delay = min(self.backoff_s * 2 ** (attempt - 1), 8.0)
        return delay * (0.75 + random.random() / 2)


def retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


@dataclass
class Call(Generic[T]):
    """One API call: what to send and how to read a successful answer. A POST carries an
    Idempotency-Key made once per call, so that every retry of it is the same request to the
    server (`POST /jobs` returns the job the first try created)."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    upload: Upload | None = None
    idempotency_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method == "POST":
            self.idempotency_key = self.idempotency_key or f"gtc-{uuid.uuid4().hex}"
            self.headers["Idempotency-Key"] = self.idempotency_key
        if self.params:
            self.params = {k: v for k, v in self.params.items() if v is not None}

    def request_kwargs(self) -> dict[str, Any]:
        """httpx keyword arguments for one attempt (an upload reopens its file each time)."""
        kwargs: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.upload is not None:
            kwargs["files"] = {"file": self.upload.open()}
            kwargs["data"] = self.data or {}
        return kwargs


@dataclass
class Upload:
    """A file sent as the ``file`` part of a multipart form, read in 64 KiB chunks as httpx
    sends it (never whole into memory), reporting ``progress(sent, total)`` as it goes."""

    path: Path
    progress: Progress | None = None
    _file: IO[bytes] | None = None

    def open(self) -> tuple[str, _ProgressReader]:
        self.close()
        self._file = open(self.path, "rb")  # noqa: SIM115 (closed by close(), after the send)
        return self.path.name, _ProgressReader(self._file, self.path.stat().st_size, self.progress)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# Read at most this much at a time: httpx asks for 64 KiB; smaller reads report progress more
# often at no measurable cost.
UPLOAD_CHUNK_BYTES = 16 * 1024


class _ProgressReader:
    """A binary file that reports how much of it has been read. `fileno` lets httpx find the
    size, so the request has a Content-Length rather than a chunked body."""

    def __init__(self, file: IO[bytes], total: int, progress: Progress | None) -> None:
        self.file, self.total, self.progress, self.sent = file, total, progress, 0
        self.name = file.name

    def read(self, size: int = -1) -> bytes:
        chunk = self.file.read(size if size < 0 else min(size, UPLOAD_CHUNK_BYTES))
        self.sent += len(chunk)
        if self.progress is not None and (chunk or self.sent == 0):
            self.progress(self.sent, self.total)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and whence == 0:
            self.sent = 0
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def fileno(self) -> int:
        return self.file.fileno()


def check(response: httpx.Response) -> httpx.Response:
    """``response`` if it succeeded, else raises its `APIStatusError`."""
    if response.status_code >= 400:
        if response.status_code == 401 and "Authorization" not in response.request.headers:
            raise AuthenticationError(
                f"no API key: set {API_KEY_ENV} or pass api_key", status_code=401,
                code="not_authenticated", field="Authorization", response=response)
        raise error_from_response(response)
    return response


def connection_error(exc: httpx.TransportError, base_url: str) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{base_url} did not answer in time ({type(exc).__name__})",
                               request=_request_of(exc))
    return APIConnectionError(f"cannot reach {base_url}: {exc or type(exc).__name__}",
                              request=_request_of(exc))


def _request_of(exc: httpx.TransportError) -> httpx.Request | None:
    try:
        return exc.request
    except RuntimeError:
        return None


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise GreenTrainerError(f"the server's answer to {response.request.method} "
                                f"{response.request.url.path} is not JSON") from exc


class SSEDecoder:
    """Server-Sent Events, line by line (the WHATWG event-stream format): ``feed`` each line
    of the body; it returns an `Event` when a blank line ends one, `END` for the server's
    ``event: end``, `KEEP_ALIVE` for a comment, else None."""

    def __init__(self) -> None:
        self.event_type = ""
        self.data: list[str] = []
        self.last_id: int | None = None

    def feed(self, line: str) -> Event | str | None:
        if line.startswith(":"):
            return KEEP_ALIVE
        if line:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self.event_type = value
            elif name == "data":
                self.data.append(value)
            elif name == "id" and value.isdigit():
                self.last_id = int(value)
            return None
        event_type, data = self.event_type, "\n".join(self.data)
        self.event_type, self.data = "", []
        if event_type == "end":
            return END
        if not data:
            return None
        import json

        return Event.from_json(json.loads(data))


END = "end"
KEEP_ALIVE = "keep-alive"


def stream_headers(last_event_id: int | None) -> dict[str, str]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return headers


def stream_timeout(timeout_s: float) -> httpx.Timeout:
    return httpx.Timeout(timeout_s, read=STREAM_READ_TIMEOUT_S)
