"""The processes `greentrainer up` runs next to the API: each is started when its part of the
project is in this build, with the same GREENTRAINER_* environment, and stopped with `up`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from greentrainer.cli import COMMANDS

# `greentrainer <command> [args]` for each companion, in start order (the one place to change).
UP_COMPANIONS: tuple[tuple[str, ...], ...] = (("worker",), ("scheduler", "--dispatch"))


def in_this_build(command: str) -> bool:
    """True when the module behind `greentrainer <command>` can be imported here."""
    try:
        return importlib.util.find_spec(COMMANDS[command][0]) is not None
    except ModuleNotFoundError:
        return False


def start(database_url: str) -> list[subprocess.Popen[bytes]]:
    """Start every available companion; print one line per companion (started or missing)."""
    env = {**os.environ, "GREENTRAINER_DATABASE_URL": database_url}
    processes = []
    for argv in UP_COMPANIONS:
        if not in_this_build(argv[0]):
            print(f"{argv[0] + ':':<19}not in this build (skipped)")
            continue
        process = subprocess.Popen([sys.executable, "-m", "greentrainer.cli", *argv], env=env)
        print(f"{argv[0] + ':':<19}started (pid {process.pid})")
        processes.append(process)
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
