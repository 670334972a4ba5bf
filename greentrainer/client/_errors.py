"""The client's errors: every failure of a call is one of these.

    GreenTrainerError
    ├── APIConnectionError            the server could not be reached (after the retries)
    │   └── APITimeoutError           it did not answer in time
    ├── APIStatusError                the server answered with its error object (`status_code`,
    │   │                               `code`, `message`, `field`, `details`)
    │   ├── BadRequestError (400)
    │   ├── AuthenticationError (401) no key, or an unknown or revoked one
    │   ├── PermissionDeniedError (403)
    │   ├── NotFoundError (404)       no such object, or another team's
    │   ├── ConflictError (409)       an illegal state change, a reused Idempotency-Key
    │   ├── PayloadTooLargeError (413)
    │   ├── UnprocessableEntityError (422)  a field of the request is wrong (names the field)
    │   ├── RateLimitError (429)
    │   └── InternalServerError (5xx)
    └── WaitTimeout                   `wait()` ran past its timeout; the job is still going

The service's own error tree (`service/errors.py`) is what the server raises; its
`service/http_errors.py` turns each into ``{"error": {"code", "message", "field"}}``, which
`error_from_response` turns back into one of these.
"""

from __future__ import annotations

from typing import Any

import httpx


class GreenTrainerError(Exception):
    """Base of every error the client raises."""


class APIConnectionError(GreenTrainerError):
    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APITimeoutError(APIConnectionError):
    pass


class APIStatusError(GreenTrainerError):
    """The server's error object. ``str()`` is its message (with the status and the code)."""

    status_code = 0

    def __init__(self, message: str, *, status_code: int, code: str, field: str | None = None,
                 details: list[dict[str, Any]] | None = None,
                 response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.field = field
        self.details = details or []
        self.response = response

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status_code}, {self.code})"


class BadRequestError(APIStatusError):
    status_code = 400


class AuthenticationError(APIStatusError):
    status_code = 401


class PermissionDeniedError(APIStatusError):
    status_code = 403


class NotFoundError(APIStatusError):
    status_code = 404


class ConflictError(APIStatusError):
    status_code = 409


class PayloadTooLargeError(APIStatusError):
    status_code = 413


class UnprocessableEntityError(APIStatusError):
    status_code = 422


class RateLimitError(APIStatusError):
    status_code = 429


class InternalServerError(APIStatusError):
    status_code = 500


class WaitTimeout(GreenTrainerError):
    """`wait()` gave up; ``job`` is the job as last seen."""

    def __init__(self, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.job = job


_BY_STATUS: dict[int, type[APIStatusError]] = {
    cls.status_code: cls
    for cls in (BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError,
                ConflictError, PayloadTooLargeError, UnprocessableEntityError, RateLimitError)
}


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The error for a response with a 4xx or 5xx status: the API's error object when the body
    is one, else the status line and the start of the body (a proxy's HTML page, say)."""
    code, field, details = f"http_{response.status_code}", None, None
    message = f"{response.reason_phrase or 'error'}: {response.text[:200].strip()}".rstrip(": ")
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        message = error["message"]
        code = str(error.get("code") or code)
        field = error.get("field") if isinstance(error.get("field"), str) else None
        details = error.get("details") if isinstance(error.get("details"), list) else None
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(message, status_code=response.status_code, code=code, field=field,
               details=details, response=response)
