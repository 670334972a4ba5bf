"""The one place where errors become HTTP responses.

Every error body has the same shape: ``{"error": {"code", "message", "field"}}``; a request
validation error also lists every problem under ``error.details``. Under ``/v1`` (the OpenAI-
compatible routes) the body is OpenAI's instead, ``{"error": {"message", "type", "param",
"code"}}``, an invalid request is a 400 as there, and a client error that a retry cannot fix
says ``x-should-retry: false`` (the OpenAI SDK otherwise retries a 409).
"""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Sequence
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from greentrainer_carbon.rho_policy import RhoPolicyKind
from service.errors import ServiceError, StorageFull

log = logging.getLogger("service.http")

# Discriminator tags pydantic puts in an error location: rho_policy.fixed.rho -> rho_policy.rho.
_UNION_TAGS = {kind.value for kind in RhoPolicyKind}
_SOURCES = {"body", "query", "path", "header", "cookie"}


def field_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in _UNION_TAGS)]
    if parts and parts[0] in _SOURCES and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts)


def validation_details(errors: Sequence[Any]) -> list[dict[str, str]]:
    """``{"field", "message"}`` for each pydantic error (the API's 422 details; the dashboard's
    forms show the same messages)."""
    details = []
    for error in errors:
        field = field_name(error.get("loc", ()))
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        details.append({"field": field, "message": f"{field}: {message}" if field else message})
    return details


OPENAI_PREFIX = "/v1/"
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def unreadable_json(exc: BaseException | None) -> str | None:
    """What made ``json.loads`` fail on syntactically valid JSON, in the client's words (None for
    any other error): nesting deeper than Python's recursion limit, or an integer of more digits
    than `sys.get_int_max_str_digits` (a denial of service guard)."""
    if isinstance(exc, RecursionError):
        return "body: JSON nested too deeply"
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return f"body: an integer has more than {sys.get_int_max_str_digits()} digits"
    return None



def _reply(path: str | None, status: int, code: str, message: str, field: str | None,
           headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The error response in the native shape, or OpenAI's for a path under ``/v1``."""
    if path is None or not path.startswith(OPENAI_PREFIX):
        return JSONResponse({"error": {"code": code, "message": message, "field": field, **extra}},
                            status_code=status, headers=headers)
    status = 400 if status == 422 else status
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    headers = dict(headers or {})
    if status < 500 and status != 429:
        headers["x-should-retry"] = "false"
    return JSONResponse({"error": {"message": message, "type": kind, "param": field,
                                   "code": code}}, status_code=status, headers=headers)


def error_response(exc: ServiceError, path: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    extra = {"details": exc.details} if exc.details is not None else {}
    return _reply(path, exc.status_code, exc.code, exc.message, exc.field, headers, **extra)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc, request.url.path)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(exc.errors())
    first: dict[str, Any] = details[0] if details else {"field": None, "message": "invalid"}
    return _reply(request.url.path, 422, "invalid_request", first["message"],
                  first["field"] or None, details=details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, ServiceError):  # FastAPI wraps errors raised while parsing
        return error_response(exc.__cause__, request.url.path)  # the body (`BodyLimit`) in a 400
    unreadable = unreadable_json(exc.__cause__)
    if exc.status_code == 400 and unreadable is not None:  # valid JSON that Python cannot load
        return _reply(request.url.path, 422, "invalid_request", unreadable, "body")
    return _reply(request.url.path, exc.status_code, "http_error", str(exc.detail), None,
                  getattr(exc, "headers", None))


async def _value_refused(request: Request, exc: Exception) -> JSONResponse:
    # Last line of defence: the schemas should have refused the value already (and named it).
    log.warning("database refused a value on %s %s: %s", request.method, request.url.path,
                str(exc).splitlines()[0])
    return _reply(request.url.path, 422, "invalid_value", "a value in the request was refused "
                  "by the database (too long, out of range or with invalid characters)", None)


async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
    # Overload (no free pooled connection) or a database that went away: the client should retry.
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                type(exc).__name__)
    return _reply(request.url.path, 503, "database_unavailable", "the database is busy or "
                  "unreachable; retry shortly (with the same Idempotency-Key)", None,
                  {"Retry-After": "1"})


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OSError)
    if exc.errno != errno.ENOSPC:
        return await _unexpected(request, exc)
    # The path goes to the server log, not to the client.
    log.error("no space left on device on %s %s: %s", request.method, request.url.path, exc.filename)
    return error_response(StorageFull("the server's data disk is full; retry later"),
                          request.url.path)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _reply(request.url.path, 500, "internal_error",
                  "internal server error; see the server log", None)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sqlalchemy.exc.DataError, _value_refused)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _database_busy)
    app.add_exception_handler(sqlalchemy.exc.OperationalError, _database_busy)
    app.add_exception_handler(OSError, _os_error)
    app.add_exception_handler(Exception, _unexpected)
