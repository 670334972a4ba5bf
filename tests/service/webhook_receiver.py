"""A real HTTP receiver on loopback for webhook tests: it verifies every request's Standard
Webhooks signature with the `standardwebhooks` library, as a user's endpoint would, records
what it got, and answers with the status codes a test scripts per path."""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: Any  # the payload when the signature checked out, else None
    error: str | None


@dataclass
class Receiver:
    secrets: dict[str, str] = field(default_factory=dict)  # path -> whsec_ secret
    answers: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    received: list[Received] = field(default_factory=list)
    base_url: str = ""

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified, error = None, None
                try:
                    verified = Webhook(receiver.secrets[self.path]).verify(body, headers)
                except (WebhookVerificationError, KeyError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                receiver.received.append(Received(self.path, headers, body, verified, error))
                queue = receiver.answers[self.path]
                code = queue.popleft() if queue else 200
                self.send_response(code if verified is not None else 401)
                self.end_headers()
                self.wfile.write(json.dumps({"ok": code < 300}).encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
