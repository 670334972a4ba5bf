"""A forwarding HTTP proxy on loopback that fails on purpose: the network and the overloaded
front ends a client meets. Each request takes the next planned failure of its method and path
(or is forwarded whole); the proxy records every request it saw."""

from __future__ import annotations

import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# The failures: answer 503 (Retry-After: 0) without forwarding; close the connection without
# forwarding; forward, then close without passing the answer on (the server did the work, the
# client never heard); forward an event stream but cut it after two events.
FAILURES = ("503", "drop", "drop_after_forwarding", "cut_stream")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    action: str


@dataclass
class FlakyProxy:
    upstream: str
    plan: dict[tuple[str, str], deque[str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def fail(self, method: str, path_prefix: str, *failures: str) -> None:
        assert all(f in FAILURES for f in failures)
        self.plan.setdefault((method, path_prefix), deque()).extend(failures)

    def next_action(self, method: str, path: str) -> str:
        for (m, prefix), queue in self.plan.items():
            if m == method and path.startswith(prefix) and queue:
                return queue.popleft()
        return "forward"

    def __enter__(self) -> FlakyProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a closed connection ends each answer

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                action = proxy.next_action(self.command, self.path)
                proxy.seen.append(Seen(self.command, self.path, dict(self.headers), action))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if action == "503":
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    self.wfile.write(b"<html>upstream overloaded</html>")
                    return
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "content-length")}
                with httpx.Client(base_url=proxy.upstream, timeout=60) as upstream, \
                        upstream.stream(self.command, self.path, content=body,
                                        headers=headers) as answer:
                    if action == "drop_after_forwarding":
                        answer.read()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.send_response(answer.status_code)
                    for k, v in answer.headers.items():
                        if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(k, v)
                    self.end_headers()
                    frames = 0
                    for chunk in answer.iter_raw():
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        frames += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
                        if action == "cut_stream" and frames >= 2:
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
