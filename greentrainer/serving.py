"""Serving the API from several processes, each with its own listening socket (SO_REUSEPORT).

uvicorn's ``--workers`` shares one listening socket between its processes, and an asyncio event
loop that wakes for it accepts every connection pending at that moment: a burst of new clients
lands mostly on one process while the others idle (measured with 2 processes: 71 % and 29 % of
the API CPU; with 8 on 16 cores the 64-in-flight burst's p99 was several times its p50). With
SO_REUSEPORT every process binds its own socket on the same port and the kernel spreads new
connections over the sockets by a hash of their addresses.

`serve_processes` is a small supervisor: it starts the processes, restarts one that dies (unless
processes die faster than they start: then it stops and exits 1), and on SIGINT or SIGTERM asks
each to shut down gracefully (uvicorn finishes the requests in flight), killing what is still
running after `SHUTDOWN_GRACE_S`.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import signal
import socket
import sys
import time

log = logging.getLogger("greentrainer.serving")

SHUTDOWN_GRACE_S = 30.0
_EARLY_DEATH_S = 5.0  # a process that dies this soon after its start counts as a failed start
_MAX_EARLY_DEATHS = 3


def reuse_port_available() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on (host, port) that other processes may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def proxy_options(trusted_proxies: list[str]) -> dict[str, object]:
    """uvicorn's options for X-Forwarded-* headers: believed only from ``trusted_proxies``
    (GREENTRAINER_TRUSTED_PROXIES). uvicorn's own default trusts 127.0.0.1, so a client on the
    host itself could forge its address (and rotate it past the failed sign-in limit)."""
    if not trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(trusted_proxies)}


def _serve_one(host: str, port: int) -> None:
    """One API process: its own socket, its own app built from the GREENTRAINER_* environment."""
    import uvicorn

    from service import logs
    from service.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    sock = bind(host, port)
    config = uvicorn.Config("service.app:create_served_app", factory=True, log_config=None,
                            access_log=False, **proxy_options(settings.trusted_proxies))  # type: ignore[arg-type]
    uvicorn.Server(config).run(sockets=[sock])


def _answering(host: str, port: int) -> bool:
    """Whether something already accepts connections on (host, port)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((target, port), timeout=1.0):
            return True
    except OSError:
        return False


def serve_processes(host: str, port: int, workers: int) -> int:
    """Run `workers` API processes on one port until SIGINT or SIGTERM; 0 on a clean stop.
    Raises OSError (EADDRINUSE) when the port is taken, also by another SO_REUSEPORT server of
    the same user, which the kernel would otherwise let share the port silently."""
    if _answering(host, port):
        raise OSError(errno.EADDRINUSE, "another server is already listening there")
    bind(host, port).close()  # fail here, in one clear error, if the port is taken
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def start() -> tuple[multiprocessing.process.BaseProcess, float]:
        process = context.Process(target=_serve_one, args=(host, port), name="greentrainer-api")
        process.start()
        return process, time.monotonic()

    children = [start() for _ in range(workers)]
    log.info("serving on %s:%d from %d processes (SO_REUSEPORT)", host, port, workers)
    early_deaths, status = 0, 0
    try:
        while not stopping:
            for i, (process, began) in enumerate(children):
                if process.is_alive():
                    continue
                early_deaths = early_deaths + 1 if time.monotonic() - began < _EARLY_DEATH_S else 0
                if early_deaths >= _MAX_EARLY_DEATHS:
                    log.error("API processes keep exiting at start (last exit code %s); stopping",
                              process.exitcode)
                    stopping, status = True, 1
                    break
                log.warning("API process %s exited with code %s; starting another",
                            process.pid, process.exitcode)
                children[i] = start()
            time.sleep(0.2)
    finally:
        for process, _ in children:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for process, _ in children:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return status
