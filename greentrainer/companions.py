"""The processes `greentrainer up` runs next to the API: each is started when the part of the
project it runs is in this build, with the same GREENTRAINER_* environment, supervised while the
API runs (`Supervisor`: one that dies, e.g. a worker killed by the OOM killer, is logged and
started again with backoff), and stopped with `up`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time

from greentrainer.cli import COMMANDS

# `greentrainer <command> [args]` for each companion, in start order (the one place to change).
UP_COMPANIONS: tuple[tuple[str, ...], ...] = (("worker",), ("scheduler", "--dispatch"))
# The package a command runs, where that is not the service itself (always in the build).
RUNS: dict[str, str] = {"worker": "worker", "train": "greentrainer_core",
                        "profile": "greentrainer_core"}


def in_this_build(command: str) -> bool:
    """True when `greentrainer <command>` and the package it runs can be imported here."""
    try:
        return all(importlib.util.find_spec(name) is not None
                   for name in (COMMANDS[command][0], RUNS.get(command, "service")))
    except (KeyError, ModuleNotFoundError):
        return False


def start(database_url: str, *, settle_seconds: float = 1.0) -> list[subprocess.Popen[bytes]]:
    """Start every available companion; print one line per companion (started or missing),
    and after ``settle_seconds`` warn about any that already exited."""
    env = {**os.environ, "GREENTRAINER_DATABASE_URL": database_url}
    processes: list[subprocess.Popen[bytes]] = []
    names: list[str] = []
    for argv in UP_COMPANIONS:
        if not in_this_build(argv[0]):
            print(f"{argv[0] + ':':<19}not in this build (skipped)")
            continue
        process = subprocess.Popen([sys.executable, "-m", "greentrainer.cli", *argv], env=env)
        print(f"{argv[0] + ':':<19}started (pid {process.pid})")
        processes.append(process)
        names.append(" ".join(argv))
    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.1)
    for name, process in zip(names, processes, strict=True):
        if process.poll() is not None:
            print(f"greentrainer up: `greentrainer {name}` exited at once with code "
                  f"{process.returncode}; see its output above", file=sys.stderr)
    return processes


def stop(processes: list[subprocess.Popen[bytes]], *, grace_seconds: float = 10.0) -> None:
    """SIGTERM each companion, then SIGKILL the ones still running after the grace period."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Supervisor:
    """Watches companions and starts again any that exits while `up` runs: each exit is printed
    with its code, and the restart waits ``backoff_s``, doubled after each exit up to
    ``max_backoff_s`` and reset once the companion has stayed up ``max_backoff_s``."""

    def __init__(self, processes: list[subprocess.Popen[bytes]], database_url: str, *,
                 poll_s: float = 0.5, backoff_s: float = 1.0, max_backoff_s: float = 60.0) -> None:
        self.processes = list(processes)
        self.env = {**os.environ, "GREENTRAINER_DATABASE_URL": database_url}
        self.poll_s, self.backoff_s, self.max_backoff_s = poll_s, backoff_s, max_backoff_s
        self.restarts = [0] * len(self.processes)
        self._delay = [backoff_s] * len(self.processes)
        self._started_at = [time.monotonic()] * len(self.processes)
        self._due: list[float | None] = [None] * len(self.processes)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="up-supervisor", daemon=True)

    def begin(self) -> Supervisor:
        if self.processes:
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_s):
            with self._lock:
                for index in range(len(self.processes)):
                    self._check(index)

    def _check(self, index: int) -> None:
        process, now = self.processes[index], time.monotonic()
        if process.poll() is None:
            if now - self._started_at[index] >= self.max_backoff_s:
                self._delay[index] = self.backoff_s  # it stayed up: the next exit waits little
            return
        name = " ".join(str(a) for a in process.args[3:])  # type: ignore[index]
        if self._due[index] is None:
            delay = self._delay[index]
            self._due[index] = now + delay
            self._delay[index] = min(delay * 2, self.max_backoff_s)
            print(f"greentrainer up: `greentrainer {name}` (pid {process.pid}) exited with code "
                  f"{process.returncode}; starting it again in {delay:g} s", file=sys.stderr,
                  flush=True)
            return
        due = self._due[index]
        if due is not None and now >= due:
            self.processes[index] = subprocess.Popen(process.args, env=self.env)
            self._started_at[index], self._due[index] = now, None
            self.restarts[index] += 1
            print(f"greentrainer up: `greentrainer {name}` started again (pid "
                  f"{self.processes[index].pid})", file=sys.stderr, flush=True)

    def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Stop watching, then stop every companion (`stop`)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            stop(self.processes, grace_seconds=grace_seconds)
