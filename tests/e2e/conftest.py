"""End-to-end fixtures: the API on loopback, real Celery worker processes, the dispatcher loop,
on Postgres + Redis (or SQLite + the SQLAlchemy broker transport, the embedded mode)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from greentrainer_carbon.config import CarbonSettings
from greentrainer_carbon.readings import CarbonReading
from service.app import create_app
from service.db import make_engine, make_session_factory, upgrade
from service.pool.carbon_plan import CarbonPlanning
from service.pool.loop import run_forever
from service.pool.queue import RUN_JOB_TASK, make_celery, queue_name
from service.settings import PoolSettings, Settings, StorageSettings, env_name
from tests.conftest import require
from tests.core.tiny import tiny_llama, tiny_tokenizer
from tests.s3 import MotoServer, moto_server, storage_settings  # noqa: F401 (fixture)
from tests.scripted_carbon import DirtyThenClean, ScriptedPlanning
from tests.service.conftest import ADMIN_KEY, LiveServer, PostgresDatabases, _pg_admin_url

REDIS_URL = "redis://127.0.0.1:6379/11"  # a db number of its own; queues named per session
REPO = Path(__file__).resolve().parents[2]


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def write_tiny_model(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tiny_llama(seed=0).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


@dataclass
class Stack:
    client: httpx.Client
    settings: Settings
    env: dict[str, str]
    gpu_class: str
    model_dir: Path
    factory: Any
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    admin: dict[str, str] = field(default_factory=lambda: {"Authorization": f"Bearer {ADMIN_KEY}"})
    app: Any = None

    def start_worker(self, data_dir: Path | None = None,
                     *args: str) -> subprocess.Popen[bytes]:
        """A worker process; ``data_dir``: its own scratch directory (another machine's disk);
        ``args``: more `greentrainer worker` options (``--gpus 0,1``)."""
        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        log = open(Path(self.settings.data_dir) / f"worker-{len(self.workers)}.log", "wb")
        env = {**self.env, **({"GREENTRAINER_DATA_DIR": str(data_dir)} if data_dir else {})}
        process = subprocess.Popen(
            [sys.executable, "-m", "greentrainer.cli", "worker", "--gpu-class", self.gpu_class,
             "--loglevel", "INFO", *args], env=env, cwd=REPO, stdout=log, stderr=log)
        self.workers.append(process)
        return process

    def worker_log(self) -> str:
        """What the worker processes have written so far (stdout and stderr)."""
        return "".join(path.read_text(errors="replace")
                       for path in sorted(Path(self.settings.data_dir).glob("worker-*.log")))

    def kill_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()

    def team(self, **quotas: Any) -> dict[str, str]:
        r = self.client.post("/teams", json={"name": f"t-{secrets.token_hex(4)}", **quotas},
                             headers=self.admin)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['api_key']['key']}"}

    def dataset(self, team: dict[str, str], rows: int = 8) -> str:
        from tests.core.tiny import ROWS

        lines = [f'{{"source": "{s}", "target": "{t}"}}' for s, t in (ROWS * 4)[:rows]]
        r = self.client.post("/datasets", files={"file": ("d.jsonl", "\n".join(lines).encode())},
                             headers=team)
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def submit(self, team: dict[str, str], **body: Any) -> str:
        payload = {"model": str(self.model_dir), "training_dataset": self.dataset(team),
                   "gpu_class": self.gpu_class, **body}
        r = self.client.post("/jobs", json=payload, headers=team)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def wait(self, team: dict[str, str], job_id: str, done: Callable[[dict[str, Any]], bool],
             timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(f"/jobs/{job_id}", headers=team).json()
            if done(job):
                return job
            if self.workers and all(w.poll() is not None for w in self.workers):
                raise AssertionError(f"every worker exited; job is {job}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; job is {job}")
            time.sleep(0.2)


SUBMITTED_G_PER_KWH = 300.0


def submitted_reading(region: str | None) -> CarbonReading:
    """The grid's intensity the loop notes for a new job (above the static averages the
    workers use, so the "cleaner times" saving of these runs is positive)."""
    return CarbonReading(SUBMITTED_G_PER_KWH, datetime.now(UTC), "test-submission")


def _stack(root: Path, database_url: str, broker_url: str | None,
           storage: StorageSettings | None = None,
           carbon: CarbonSettings | None = None) -> Iterator[Stack]:
    """The stack; with ``carbon``, every process (API, loop, workers) reads those carbon
    settings and the loop plans with production's `CarbonPlanning` instead of a scripted grid."""
    upgrade(database_url)
    models = root / "models"
    model_dir = write_tiny_model(models / "tiny")
    gpu_class = f"e2e{secrets.token_hex(3)}"
    pool = PoolSettings(lease_seconds=4.0, heartbeat_seconds=0.5, pickup_seconds=20.0,
                        dispatch_interval_seconds=0.5, max_attempts=3)
    values: dict[str, Any] = dict(database_url=database_url, data_dir=str(root / "data"),
                                  admin_key=ADMIN_KEY, allowed_model_dirs=str(models),
                                  **pool.model_dump())
    if broker_url:
        values["broker_url"] = broker_url
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GREENTRAINER_CARBON_PROVIDERS": "static",
           **{f"GREENTRAINER_{k.upper()}": str(v) for k, v in values.items()}}
    storage = storage or StorageSettings()
    env.update({env_name("storage", k): v.get_secret_value() if isinstance(v, SecretStr) else str(v)
                for k, v in storage.model_dump().items() if v is not None})
    if carbon is not None:
        env.update({env_name("carbon", k): v.isoformat() if isinstance(v, datetime) else str(v)
                    for k, v in carbon.model_dump().items() if v is not None})
    settings = Settings(database_url=database_url, data_dir=root / "data", admin_key=ADMIN_KEY,
                        allowed_model_dirs=[models], broker_url=broker_url, storage=storage,
                        **({"carbon": carbon} if carbon is not None else {}))
    app = create_app(settings)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    celery = make_celery(settings, pool)

    def send(job_id: str, gpu: str) -> None:
        celery.send_task(RUN_JOB_TASK, args=[job_id], queue=queue_name(gpu))

    stop = threading.Event()
    planning: Any = ScriptedPlanning(DirtyThenClean(4))  # dirty for 4 h: deadline jobs wait
    current: Any = submitted_reading
    if carbon is not None:
        planning = CarbonPlanning(settings, factory)
        current = lambda region: planning.chain(region).latest().value  # noqa: E731
    loop = threading.Thread(target=run_forever, args=(factory, pool, send, planning,
                                                      stop, current, carbon),
                            daemon=True)
    loop.start()
    with LiveServer(app) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        stack = Stack(client, settings, env, gpu_class, model_dir, factory, app=app)
        try:
            yield stack
        finally:
            stack.kill_workers()
            stop.set()
            loop.join(timeout=10)
    engine.dispose()
    app.state.context.engine.dispose()


@pytest.fixture
def production_stack(tmp_path: Path) -> Iterator[Stack]:
    """Postgres (a fresh gt_test_* database) + Redis + real worker processes."""
    yield from _production(tmp_path, None)


def _production(tmp_path: Path, storage: StorageSettings | None,
                carbon: CarbonSettings | None = None) -> Iterator[Stack]:
    admin = _pg_admin_url()
    require(admin is not None, "Postgres on 127.0.0.1:5432 (database `test`)")
    require(redis_available(), "Redis on 127.0.0.1:6379")
    assert admin is not None
    databases = PostgresDatabases(admin)
    try:
        for stack in _stack(tmp_path, databases.create(), REDIS_URL, storage, carbon):
            yield stack
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(match=f"*{queue_name(stack.gpu_class)}*"):
                client.delete(key)  # this test's queue and kombu's bindings for it
    finally:
        databases.drop_all()


@pytest.fixture
def s3_production_stack(tmp_path: Path, moto_server: MotoServer) -> Iterator[Stack]:
    """The production stack with its blobs in a bucket of a real S3 server (moto)."""
    yield from _production(tmp_path, storage_settings(moto_server.url))


@pytest.fixture
def embedded_stack(tmp_path: Path) -> Iterator[Stack]:
    """SQLite + kombu's SQLAlchemy transport on a SQLite file: no server at all."""
    yield from _stack(tmp_path, f"sqlite:///{tmp_path / 'gt.sqlite'}", None)
