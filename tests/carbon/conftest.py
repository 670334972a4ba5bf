"""A real HTTP server on 127.0.0.1 whose answers each test scripts (the providers' fakes)."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Answer:
    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw: bytes | None = None


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeServer:
    """Scripted answers per path: `add(path, Answer(...), ...)`; the last answer repeats."""

    def __init__(self) -> None:
        self.routes: dict[str, deque[Answer]] = defaultdict(deque)
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                server.requests.append(Seen(parts.path, parse_qs(parts.query), dict(self.headers)))
                queue = server.routes.get(parts.path)
                if not queue:
                    answer = Answer(
                        404, {"error": {"code": "404", "message": f"no route {parts.path}"}}
                    )
                else:
                    answer = queue.popleft() if len(queue) > 1 else queue[0]
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                payload = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, *answers: Answer) -> None:
        self.routes[path].extend(answers)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_server():
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture
def sleeps() -> list[float]:
    """Collects the backoff waits instead of sleeping."""
    return []
