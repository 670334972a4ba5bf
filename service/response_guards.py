"""Guards on every response: security headers, and redirects that never name a host.

`SecurityHeaders` adds to every response what a browser needs to refuse framing, sniffing and
foreign scripts (the dashboard loads only its own script and style sheet, so the policy is
strict). `RelativeRedirects` turns an absolute ``Location`` that points back at this server
into a path: Starlette builds one from the request's ``Host`` header (``/jobs/`` ->
``http://<Host>/jobs``), which let a forged Host send a browser to another site. With
GREENTRAINER_ALLOWED_HOSTS set, Starlette's TrustedHostMiddleware also answers any other Host 400
(`service.app`).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class RelativeRedirects:
    """Rewrites an absolute ``Location`` on this server's host to its path (and query): a redirect
    of this server stays on whatever host the browser used, and a forged ``Host`` header is
    never echoed (the app builds absolute URLs from it). Redirects to other hosts that the
    app chose itself (presigned object-store URLs) are left as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()

        async def relative(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                headers = [(name, _path_only(value) if name.lower() == b"location"
                            and _own(value, host) else value)
                           for name, value in message.get("headers", [])]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, relative)


def _own(location: bytes, host: str) -> bool:
    """Whether ``location`` points at this server (no host, or the request's own): a redirect
    elsewhere (an object store's presigned URL, service/artifact_download.py) is left whole."""
    netloc = urlsplit(location.decode("latin-1")).netloc.lower()
    return not netloc or netloc == host


def _path_only(location: bytes) -> bytes:
    parts = urlsplit(location.decode("latin-1"))
    path = parts.path if parts.path.startswith("/") else "/" + parts.path
    while path.startswith("//"):  # "//evil.example" would be a host again
        path = path[1:]
    return urlunsplit(("", "", path, parts.query, parts.fragment)).encode("latin-1")
