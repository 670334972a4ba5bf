"""Guards every request passes before routing, answering with the service's error body:
`BodyLimit` refuses bodies over the limit while they arrive (413); `NulGuard` refuses URLs
with NUL characters (422), which no backend can store or compare."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import InvalidInput, PayloadTooLarge, ServiceError

MULTIPART_OVERHEAD_BYTES = 64 * 1024


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than {max_bytes} bytes "
                           "(GREENTRAINER_MAX_UPLOAD_BYTES plus multipart framing)", field="file")


class BodyLimit:
    """A declared Content-Length over ``max_bytes`` is answered at once; a body without one is
    counted as it is read and the read raises `PayloadTooLarge` (mapped to 413 by the error
    handlers) as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, scope["path"])
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Send, path: str) -> None:
        await _answer(send, _too_large(self.max_bytes), path)


class NulGuard:
    """A path or query string holding a NUL character (``%00``) is answered 422 at once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if "\x00" in scope["path"]:
                await _answer(send, InvalidInput("the URL path must not contain NUL characters",
                                                 field="path"), scope["path"])
                return
            if b"%00" in scope["query_string"].lower():
                await _answer(send, InvalidInput("query parameters must not contain NUL "
                                                 "characters", field="query"), scope["path"])
                return
        await self.app(scope, receive, send)


async def _answer(send: Send, error: ServiceError, path: str) -> None:
    from service.http_errors import error_response

    response = error_response(error, path)
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
