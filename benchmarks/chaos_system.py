"""The system under chaos (benchmarks/chaos.py): a private Postgres cluster and a private Redis on
free loopback ports, `greentrainer serve`, worker processes and `greentrainer scheduler
--dispatch`, each a separate process that the chaos thread may kill and start again.

Nothing here touches the machine's shared Postgres (5432) or Redis (6379): the cluster is
initdb'ed into a new directory under /tmp and the Redis has no persistence, so every kill of it
loses every queued message (the reconciler must re-send them).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load_jobs import free_port, start_server  # noqa: E402

from tests.e2e.conftest import write_tiny_model  # noqa: E402
from tests.hardening.private_services import PrivatePostgres, PrivateRedis, _wait_port  # noqa: E402

GPU_CLASS = "chaos"
# Short leases so that a killed worker's job is re-queued within seconds, not the production
# minute; a Postgres outage of up to --pg-down-max seconds may outlast one (both paths are legal).
POOL = {"LEASE_SECONDS": "10", "HEARTBEAT_SECONDS": "1", "PICKUP_SECONDS": "20",
        "DISPATCH_INTERVAL_SECONDS": "1", "MAX_ATTEMPTS": "3"}


@dataclass
class Event:
    """One thing the chaos thread (or the supervisor) did or saw, ``t`` seconds into the run."""

    t: float
    component: str
    action: str  # kill | restart | unexpected_exit
    detail: str = ""


@dataclass
class System:
    root: Path
    begin: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    admin_key: str = field(default_factory=lambda: "gt_chaos_" + secrets.token_hex(16))
    pg: PrivatePostgres = field(default_factory=PrivatePostgres)
    redis: PrivateRedis = field(default_factory=PrivateRedis)
    api: subprocess.Popen[bytes] | None = None
    procs: dict[str, subprocess.Popen[bytes] | None] = field(default_factory=dict)
    # Held while a process is killed or checked, so a kill is never taken for a crash.
    lock: threading.RLock = field(default_factory=threading.RLock)
    database_url: str = ""
    base_url: str = ""
    model_dir: Path = Path()

    def record(self, component: str, action: str, detail: str = "") -> None:
        with self.lock:
            self.events.append(Event(round(time.monotonic() - self.begin, 1), component, action,
                                     detail))

    # --- start and stop ------------------------------------------------------------------------

    def start(self, workers: int) -> None:
        """Everything up, migrated, the API answering; raises when a part does not start."""
        self.model_dir = write_tiny_model(self.root / "models" / "tiny")
        self.pg.init()
        self.pg.start()
        self.database_url = self.pg.create_database("gt_chaos")
        self.redis.start()
        os.environ.update({
            "GREENTRAINER_BROKER_URL": self.redis.url, "HF_HUB_OFFLINE": "1",
            "GREENTRAINER_CARBON_PROVIDERS": "static",
            "GREENTRAINER_ALLOWED_MODEL_DIRS": str(self.root / "models"),
            "GREENTRAINER_POOL__GPU_CLASSES": GPU_CLASS, "OMP_NUM_THREADS": "1",
            **{f"GREENTRAINER_POOL__{k}": v for k, v in POOL.items()}})
        port = free_port()
        self.api = start_server(self.database_url, self.admin_key, port, self.root / "data", 1)
        self.base_url = f"http://127.0.0.1:{port}"
        for i in range(workers):
            self.start_component(f"worker-{i}")
        self.start_component("scheduler")

    def _env(self) -> dict[str, str]:
        return {**os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                "GREENTRAINER_DATABASE_URL": self.database_url,
                "GREENTRAINER_DATA_DIR": str(self.root / "data"),
                "GREENTRAINER_LOG_LEVEL": "WARNING"}

    def start_component(self, name: str) -> None:
        """A worker (``worker-N``) or the scheduler as its own process (and process group, so a
        kill takes everything it started)."""
        args = (["worker", "--gpu-class", GPU_CLASS, "--loglevel", "WARNING"]
                if name.startswith("worker") else ["scheduler", "--dispatch"])
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (the process owns it)
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "greentrainer.cli", *args],
                                            env=self._env(), cwd=ROOT, stdout=log, stderr=log,
                                            start_new_session=True)
        log.close()

    def kill_component(self, name: str) -> None:
        """SIGKILL to ``name``'s process group: no shutdown code runs, as in a power loss."""
        with self.lock:
            process = self.procs.get(name)
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
            self.procs[name] = None

    def busy_worker(self) -> str | None:
        """The name of a worker process that holds a running job's lease (its lease owner is
        ``host:pid:class:device``), or None: none does, or the database is down."""
        import psycopg
        try:
            with psycopg.connect(self.database_url.replace("+psycopg", ""), connect_timeout=2) as conn:
                owners = [str(o) for (o,) in conn.execute(
                    "SELECT lease_owner FROM jobs WHERE status = 'running' AND lease_owner IS NOT NULL")]
        except psycopg.OperationalError:
            return None
        pids = {owner.split(":")[1] for owner in owners if owner.count(":") >= 3}
        return next((name for name, process in self.procs.items() if name.startswith("worker")
                     and process is not None and str(process.pid) in pids), None)

    def kill_postgres(self, mode: str) -> None:
        """``immediate``: `pg_ctl stop -m immediate` (SIGQUIT: no checkpoint, crash recovery at
        the next start); ``sigkill``: SIGKILL to the postmaster, then to every backend still
        alive after 10 s (an OOM kill of the whole service)."""
        if mode == "immediate":
            self.pg.stop("immediate")
            return
        pid = int((self.pg.data / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        children = postmaster.children(recursive=True)
        postmaster.kill()
        _gone, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(alive, timeout=10)
        _wait_port(self.pg.port, up=False)

    def start_postgres(self) -> None:
        """Start the cluster again; tried for up to 60 s (after a SIGKILL the old shared memory
        may take a moment to be released)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                self.pg.start()
                return
            except (subprocess.CalledProcessError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def supervise(self) -> None:
        """Restart a worker or the scheduler that exited by itself (as systemd would) and record
        it: a process that dies of a fault it should ride out is a finding."""
        with self.lock:
            for name, process in list(self.procs.items()):
                if process is not None and process.poll() is not None:
                    self.record(name, "unexpected_exit", f"exit status {process.returncode}")
                    self.start_component(name)
        if self.api is not None and self.api.poll() is not None:
            raise RuntimeError(f"the API exited (status {self.api.returncode}); see {self.root}")

    def stop(self) -> None:
        for name in list(self.procs):
            process = self.procs[name]
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name in list(self.procs):
            process = self.procs[name]
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.kill_component(name)
        if self.api is not None:
            self.api.terminate()
            try:
                self.api.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.api.kill()
        with contextlib.suppress(Exception):
            self.redis.kill()
        self.pg.remove()
