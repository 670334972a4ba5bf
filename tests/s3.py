"""A real S3-protocol server for the tests (moto in server mode, its own process) and a TCP proxy
in front of it that injects the faults a real object store has: down, 5xx answers, stalled
reads. Registered as a pytest plugin by tests/conftest.py."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.settings import StorageSettings
from tests.conftest import require


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port}")


class MotoServer:
    """`python -m moto.server` on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=self._log)
        wait_for_port(self.port, self.process, "moto server")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


@dataclass
class Rule:
    """Requests whose request line matches ``pattern`` get ``action`` ``times`` times."""

    pattern: str
    action: str  # "503": answered 503; "stall": the response stops after 64 KiB for stall_s
    times: int = 1_000_000
    stall_s: float = 3.0


@dataclass
class FaultProxy:
    """Forwards loopback connections to ``upstream``; one request per connection (it adds
    ``Connection: close``), so that every request is checked against the rules."""

    upstream_port: int
    rules: list[Rule] = field(default_factory=list)
    down: bool = False
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _rule(self, line: str) -> Rule | None:
        with self.lock:
            self.seen.append(line)
            for rule in self.rules:
                if rule.times > 0 and re.search(rule.pattern, line):
                    rule.times -= 1
                    return rule
        return None

    def _serve(self, client: socket.socket) -> None:
        with client:
            if self.down:
                return  # accepted and closed: a server that is gone
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, rest = head.split(b"\r\n\r\n", 1)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            rule = self._rule(line)
            if rule is not None and rule.action == "503":
                client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               b"Connection: close\r\n\r\n")
                return
            lines = [h for h in head.split(b"\r\n") if not h.lower().startswith(b"connection:")]
            request = b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + rest
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(request)
                threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
                self._pump(upstream, client, stall=rule)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, stall: Rule | None = None) -> None:
        sent = 0
        try:
            while chunk := source.recv(65536):
                if stall is not None and sent >= 65536:
                    time.sleep(stall.stall_s)
                    return  # the stalled response never finishes
                sink.sendall(chunk)
                sent += len(chunk)
        except OSError:
            return
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def storage_settings(url: str, **values: object) -> StorageSettings:
    """An s3 storage section on ``url`` with a bucket of its own."""
    defaults: dict[str, object] = dict(
        backend="s3", endpoint_url=url, bucket=f"gt-{uuid.uuid4().hex[:12]}",
        access_key_id="test", secret_access_key="test", part_size_mib=5,
        connect_timeout_s=1.0, read_timeout_s=5.0, max_attempts=3)
    return StorageSettings.model_validate({**defaults, **values})


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    require(importlib.util.find_spec("moto") is not None
            and importlib.util.find_spec("flask") is not None, "moto[server]")
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_server.port)
    try:
        yield proxy
    finally:
        proxy.close()
