"""`greentrainer serve --workers N`: one socket per process, so new connections are spread over the
processes; a process that dies is replaced; SIGTERM stops them all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from greentrainer.commands.serve import migrate_main
from tests.commands.test_serve_up import ROOT, _free_port, _ready, fresh  # noqa: F401 (fixture)

CONNECTIONS = 64


def _serve(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "greentrainer.cli", "serve", "--port", str(port), "--workers",
         str(workers), "--database-url", url], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _api_processes(server: subprocess.Popen[bytes], port: int) -> list[psutil.Process]:
    """The server's processes that listen on `port`."""
    found = []
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                   for c in child.net_connections("tcp")):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _open_kept_alive(port: int) -> list[socket.socket]:
    """CONNECTIONS connections opened at once, each answered once and kept open."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(CONNECTIONS)]
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
    for sock in socks:
        assert b" 200 " in sock.recv(4096).split(b"\r\n", 1)[0] + b" "
    return socks


@pytest.fixture
def served(fresh: Path):  # noqa: F811
    url = f"sqlite:///{fresh / 'served.sqlite'}"
    assert migrate_main(["--database-url", url]) == 0
    port = _free_port()
    server = _serve(url, port, workers=2)
    try:
        assert _ready(server, port) == 200, "serve --workers 2 did not answer"
        assert _wait_for(lambda: len(_api_processes(server, port)) == 2)
        yield server, port
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=60)


def test_new_connections_are_spread_over_the_api_processes(served) -> None:
    # With one shared socket the first process to wake accepted most of a burst of connections
    # (seen: all 64 on one); with a socket each the kernel hashes them over both (fewer than 16
    # of 64 on one side has a probability near 1e-5).
    server, port = served
    listening = {os.readlink(f"/proc/{process.pid}/fd/{c.fd}")
                 for process in _api_processes(server, port)
                 for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert len(listening) == 2, f"the API processes share a listening socket: {listening}"
    socks = _open_kept_alive(port)
    try:
        held = []
        for process in _api_processes(server, port):
            held.append(sum(1 for c in process.net_connections("tcp")
                            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port))
        assert sum(held) == CONNECTIONS
        assert min(held) >= 16, f"connections per API process: {held}"
    finally:
        for sock in socks:
            sock.close()


def test_an_api_process_that_dies_is_replaced_and_sigterm_stops_them_all(served) -> None:
    server, port = served
    victim = _api_processes(server, port)[0]
    victim.kill()
    assert _wait_for(lambda: victim.pid not in {p.pid for p in _api_processes(server, port)}
                     and len(_api_processes(server, port)) == 2), "no replacement started"
    assert _ready(server, port) == 200
    children = psutil.Process(server.pid).children(recursive=True)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {alive}"


def test_a_second_server_on_the_same_port_is_refused_not_sharing_it(served, fresh) -> None:  # noqa: F811
    # SO_REUSEPORT lets any socket of the same user bind the port too: a second `serve` started
    # by mistake would silently take half the connections.
    server, port = served
    second = subprocess.run(
        [sys.executable, "-m", "greentrainer.cli", "serve", "--port", str(port), "--workers", "2",
         "--database-url", f"sqlite:///{fresh / 'served.sqlite'}"], cwd=ROOT, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert second.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in second.stderr
    assert "choose one with --port" in second.stderr
    assert len(_api_processes(server, port)) == 2


def test_a_served_app_is_frozen_out_of_the_collectors_walks(fresh) -> None:  # noqa: F811
    """What a server process allocates before serving goes to the permanent generation
    (`settle_heap`): a full collection then walks only what requests made since."""
    url = f"sqlite:///{fresh / 'served.db'}"
    assert migrate_main(["--database-url", url]) == 0
    probe = ("import gc, json\n"
             "from service.app import create_app, create_served_app\n"
             "create_app(); before = gc.get_freeze_count()\n"
             "create_served_app()\n"
             "print(json.dumps([before, gc.get_freeze_count(), len(gc.get_objects())]))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "GREENTRAINER_DATABASE_URL": url},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    before, frozen, tracked = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == 0  # create_app alone (tests, embedding) freezes nothing
    assert frozen > 50_000 and tracked < frozen / 5, (frozen, tracked)
