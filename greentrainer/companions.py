"""The processes `greentrainer up` runs next to the API: each is started when the part of the
project it runs is in this build, with the same GREENTRAINER_* environment, and stopped with `up`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
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
