"""`greentrainer up` on a fresh data dir: migrates the embedded SQLite DB, prints a working admin
key, and with --demo creates the demo team, data set and job; a second run reuses them."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from greentrainer import companions
from greentrainer.cli import COMMANDS, main
from greentrainer.commands.serve import migrate_main, serve_main
from greentrainer.commands.up import up_main
from service.app import create_app
from service.db import current_revision, head_revision, make_engine
from service.settings import Settings
from tests.dashboard.helpers import csrf_of
from tests.service.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("GREENTRAINER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GREENTRAINER_DATA_DIR", str(tmp_path / "var"))
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(json.dumps({"source": f"text {i}", "target": f"sum {i}"})
                                for i in range(3)))
    yield tmp_path
    os.environ.pop("GREENTRAINER_LOG_FORMAT", None)  # `up` sets it for the processes it starts


def _printed(out: str, label: str) -> str:
    match = re.search(rf"^{label}:\s+(\S+)", out, re.MULTILINE)
    assert match, f"`{label}` not printed:\n{out}"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(process: subprocess.Popen[str] | subprocess.Popen[bytes], port: int) -> int | None:
    """/readyz's status once the server answers (None if it died or never answered)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.2)
    return None


def test_up_demo_prepares_a_working_admin_key_team_data_set_and_job(
        fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--demo", "--demo-dataset", str(fresh / "sample.jsonl"), "--no-serve"]
    assert up_main(args) == 0
    out = capsys.readouterr().out
    admin, team_key, job_id = (_printed(out, "admin key"), _printed(out, "demo team key"),
                               _printed(out, "demo job"))
    assert (fresh / "var" / "admin.key").stat().st_mode & 0o777 == 0o600
    # The printed links are the dashboard's, where the demo team's key signs in.
    dashboard = urlsplit(_printed(out, "dashboard")).path
    watch = re.search(r"watch it: (\S+)\)", out)
    assert watch, out
    job_page = urlsplit(watch.group(1)).path
    assert job_page == f"{dashboard}/jobs/{job_id}"
    app = create_app(Settings())
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.base_url) as client:
            teams = client.get("/teams", headers={"Authorization": f"Bearer {admin}"}).json()
            job = client.get(f"/jobs/{job_id}", headers={"Authorization": f"Bearer {team_key}"})
            token = csrf_of(client.get(f"{dashboard}/login").text)
            signed_in = client.post(f"{dashboard}/login",
                                    data={"api_key": team_key, "csrf_token": token})
            page = client.get(job_page)
    finally:
        app.state.context.engine.dispose()
    assert signed_in.status_code == 303
    assert page.status_code == 200 and job_id in page.text
    assert [t["name"] for t in teams] == ["demo"]
    assert job.status_code == 200 and job.json()["status"] == "queued"
    assert job.json()["model"] == "smollm2-135m-instruct"

    assert up_main(args) == 0  # a second run reuses the keys and the job
    again = capsys.readouterr().out
    assert (_printed(again, "admin key"), _printed(again, "demo job")) == (admin, job_id)


def test_up_demo_trains_on_the_shipped_xsum_sample_and_evaluates_on_its_test_set(
        fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from service.demo import DEMO_DATASET_PATH, DEMO_TEST_DATASET_PATH

    assert up_main(["--demo", "--no-serve"]) == 0
    out = capsys.readouterr().out
    team = {"Authorization": f"Bearer {_printed(out, 'demo team key')}"}
    app = create_app(Settings())
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.base_url) as client:
            job = client.get(f"/jobs/{_printed(out, 'demo job')}", headers=team).json()
            rows = {d["id"]: d["row_count"] for d in client.get("/datasets", headers=team)
                    .json()["data"]}
    finally:
        app.state.context.engine.dispose()
    lines = [len(p.read_text().splitlines()) for p in (DEMO_DATASET_PATH,
                                                        DEMO_TEST_DATASET_PATH)]
    assert [rows[job["training_dataset"]], rows[job["test_dataset"]]] == lines
    assert job["model"] == "smollm2-135m-instruct" and job["method"] == "greentrainer"


def test_up_demo_without_the_sample_file_says_what_is_missing(
        fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert up_main(["--demo", "--demo-dataset", str(fresh / "nope.jsonl"), "--no-serve"]) == 2
    assert "nope.jsonl is missing" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "up", "worker", "migrate"])
def test_a_setting_that_does_not_parse_is_named_not_traced(
        command: str, fresh: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GREENTRAINER_LOG_FORMAT", "xml")
    monkeypatch.setenv("GREENTRAINER_DB_POOL_SIZE", "many")
    monkeypatch.setenv("GREENTRAINER_ADMIN_KEY", "")  # a secret: named, never repeated
    monkeypatch.setenv("GREENTRAINER_DATABASE_URL", "postgresql://u:hunter2@db/gt")
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"greentrainer {command}: ") and "Traceback" not in err
    assert "GREENTRAINER_LOG_FORMAT='xml': Input should be 'json' or 'text'" in err
    assert "GREENTRAINER_DB_POOL_SIZE='many': Input should be a valid integer" in err
    assert "hunter2" not in err


@pytest.mark.parametrize("command", [up_main, serve_main])
def test_a_port_in_use_is_reported_before_anything_starts(
        command, fresh: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def not_started(*args: object, **kwargs: object) -> None:
        raise AssertionError("the worker and scheduler started behind an API that cannot listen")

    monkeypatch.setattr(companions, "start", not_started)
    assert migrate_main([]) == 0
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert command(["--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"greentrainer: cannot listen on 127.0.0.1:{port}: Address already in use" in err
    assert "--port" in err and "Traceback" not in err


def test_greentrainer_up_serves_the_api_on_a_fresh_machine(fresh: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "greentrainer.cli", "up", "--port", str(port), "--api-only"],
        cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert _ready(process, port) == 200, "up did not serve /readyz"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "admin key:" in output and (fresh / "var" / "greentrainer.sqlite").is_file()
    # Text logs on a terminal (JSON is the default of `serve`), without alembic's plugin list.
    assert "INFO uvicorn.error: Application startup complete." in output, output
    assert '{"ts":' not in output and "setup plugin" not in output, output


def test_companions_in_the_build_run_with_the_database_and_missing_ones_are_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `migrate` stands in for a companion: a real command that exits once it has done its work.
    monkeypatch.setattr(companions, "UP_COMPANIONS", (("migrate",), ("no-such-command",)))
    monkeypatch.setitem(COMMANDS, "no-such-command", ("service.no_such_module", "main", ""))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)
    url = f"sqlite:///{tmp_path / 'companion.sqlite'}"
    processes = companions.start(url, settle_seconds=0)
    try:
        assert [p.wait(timeout=60) for p in processes] == [0]
    finally:
        companions.stop(processes, grace_seconds=5)
    out = capsys.readouterr().out
    assert "migrate:           started" in out
    assert "no-such-command:   not in this build" in out
    assert "exited at once" not in out
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_stop_ends_a_running_companion() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    companions.stop([process], grace_seconds=5)
    assert process.returncode is not None


def test_serve_with_two_worker_processes_answers(fresh: Path) -> None:
    url = f"sqlite:///{fresh / 'two.sqlite'}"
    assert migrate_main(["--database-url", url]) == 0
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "greentrainer.cli", "serve", "--port", str(port), "--workers", "2",
         "--database-url", url], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert _ready(process, port) == 200, "serve --workers 2 did not answer"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_companion_that_dies_at_once_is_reported(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # `migrate --revision nonsense` is a real command that fails immediately.
    monkeypatch.setattr(companions, "UP_COMPANIONS", (("migrate", "--revision", "nonsense"),))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)
    processes = companions.start("sqlite:///:memory:", settle_seconds=10)
    companions.stop(processes, grace_seconds=5)
    assert "`greentrainer migrate --revision nonsense` exited at once with code 1" in \
        capsys.readouterr().err


def test_a_companion_that_dies_is_logged_and_started_again_with_backoff(
        capsys: pytest.CaptureFixture[str]) -> None:
    # issue 24: `up` neither noticed nor restarted a dead worker (its job stayed `running`
    # until the lease expired, and nothing was logged)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    crasher = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    supervisor = companions.Supervisor([sleeper, crasher], "sqlite:///:memory:", poll_s=0.05,
                                       backoff_s=0.2, max_backoff_s=5).begin()
    try:
        sleeper.kill()  # kill -9, as the OOM killer would
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and supervisor.processes[0] is sleeper:
            time.sleep(0.05)
        assert supervisor.processes[0] is not sleeper, "the killed companion was not restarted"
        assert supervisor.processes[0].poll() is None
        assert supervisor.processes[0].args == sleeper.args
        time.sleep(2.0)  # the crasher exits each time: restarts wait 0.2, 0.4, 0.8, 1.6 s ...
        assert 2 <= supervisor.restarts[1] <= 4, supervisor.restarts
    finally:
        supervisor.stop(grace_seconds=5)
    assert all(p.poll() is not None for p in supervisor.processes)
    err = capsys.readouterr().err
    assert f"(pid {sleeper.pid}) exited with code -9; starting it again in 0.2 s" in err
    assert "exited with code 3; starting it again in 0.4 s" in err
    assert "started again (pid" in err
