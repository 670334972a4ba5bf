"""`greentrainer serve | migrate | up`: run the API, upgrade the schema, or do both on a fresh
machine with embedded defaults (see docs/service.md)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from service.db import current_revision, make_engine, upgrade
from service.errors import ServiceError
from service.settings import Settings


def _settings(database_url: str | None = None) -> Settings:
    settings = Settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default GREENTRAINER_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default GREENTRAINER_PORT, 8000)")
    parser.add_argument("--database-url", help="override GREENTRAINER_DATABASE_URL")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes (default 1; about one per CPU core)")


def _run(settings: Settings, host: str | None, port: int | None, *, workers: int = 1,
         queued: str | None = None) -> int:
    import uvicorn

    from service import logs
    from service.app import create_app
    from service.dispatch import notify
    from service.heap import settle_heap

    try:
        app = create_app(settings)
    except ServiceError as exc:
        print(f"greentrainer: {exc.message}", file=sys.stderr)
        return 2
    host, port = host or settings.host, port or settings.port
    taken = port_taken(host, port)
    if taken:
        print(taken, file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if queued is not None:
        notify(app.state.context.dispatcher, "queued", queued)
    if workers > 1:
        # Each worker process builds its own app from the same GREENTRAINER_* environment.
        app.state.context.engine.dispose()
        os.environ["GREENTRAINER_DATABASE_URL"] = settings.database_url
        from service import serving

        if serving.reuse_port_available() and port:  # a socket per process (see serving.py)
            try:
                return serving.serve_processes(host, port, workers)
            except OSError as exc:
                print(f"greentrainer: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
                return 2
        uvicorn.run("service.app:create_served_app", factory=True, workers=workers, host=host,
                    port=port, log_config=None, access_log=False)
    else:
        settle_heap()
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return 0


def port_taken(host: str, port: int) -> str | None:
    """Why the API cannot listen on (host, port), e.g. another `up` holds it; None when it can.
    Checked before anything starts, so that no worker or scheduler is left running behind an
    API that failed, and the error is one line instead of uvicorn's shutdown log."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (f"greentrainer: cannot listen on {host}:{port}: {exc.strerror} "
                    "(another `greentrainer up` or `serve`? choose one with --port)")
    return None


def serve_main(argv: list[str]) -> int:
    """Run the HTTP API. Exits with 2, naming `greentrainer migrate`, on an un-migrated DB."""
    parser = argparse.ArgumentParser(prog="greentrainer serve", description=serve_main.__doc__)
    _serve_args(parser)
    args = parser.parse_args(argv)
    return _run(_settings(args.database_url), args.host, args.port, workers=args.workers)


def migrate_main(argv: list[str]) -> int:
    """Upgrade the database schema to the latest migration (or to --revision)."""
    parser = argparse.ArgumentParser(prog="greentrainer migrate", description=migrate_main.__doc__)
    parser.add_argument("--database-url", help="override GREENTRAINER_DATABASE_URL")
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)
    settings = _settings(args.database_url)
    upgrade(settings.database_url, args.revision)
    engine = make_engine(settings.database_url)
    try:
        where = engine.url.render_as_string(hide_password=True)
        print(f"{where}: at migration {current_revision(engine)}")
    finally:
        engine.dispose()
    return 0


def up_main(argv: list[str]) -> int:
    """Run everything with embedded defaults: migrate, print an admin key, start the worker and
    scheduler (those in this build) and serve the API. With --demo also create a demo team,
    upload the sample data set and submit a short job."""
    parser = argparse.ArgumentParser(prog="greentrainer up", description=up_main.__doc__)
    _serve_args(parser)
    parser.add_argument("--demo", action="store_true", help="create the demo team, data, job")
    parser.add_argument("--demo-dataset", type=Path, help="data set file for --demo "
                        "(default: the sample shipped with the project)")
    parser.add_argument("--no-serve", action="store_true",
                        help="prepare the database and keys, print them, and exit")
    parser.add_argument("--api-only", action="store_true",
                        help="do not start the worker and scheduler next to the API")
    args = parser.parse_args(argv)
    # Text logs for a terminal; the API, worker and scheduler all read this (a value set, kept).
    os.environ.setdefault("GREENTRAINER_LOG_FORMAT", "text")
    settings = _settings(args.database_url)
    try:
        demo_job = _prepare(settings, args.demo, args.demo_dataset, args.host, args.port)
    except ServiceError as exc:
        print(f"greentrainer up: {exc.message}", file=sys.stderr)
        return 2
    if args.no_serve:
        return 0
    taken = port_taken(args.host or settings.host, args.port or settings.port)
    if taken:
        print(taken, file=sys.stderr)
        return 2
    from service import companions

    processes = [] if args.api_only else companions.start(settings.database_url)
    try:
        return _run(settings, args.host, args.port, workers=args.workers, queued=demo_job)
    finally:
        companions.stop(processes)


def _prepare(settings: Settings, demo: bool, demo_dataset: Path | None, host: str | None,
             port: int | None) -> str | None:
    """Migrate, make the admin key (and the demo), print them; returns a new demo job's id."""
    from service import demo as first_run
    from service.dashboard.router import PREFIX as DASHBOARD
    from service.db import make_session_factory, session_scope
    from service.storage import LocalBlobStore

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    url = f"http://{host or settings.host}:{port or settings.port}"
    try:
        with session_scope(make_session_factory(engine)) as session:
            admin_key = first_run.ensure_admin_key(session, Path(settings.data_dir))
            setup = None
            if demo:
                # A data set of the user's own has no matching test set: no ROUGE then.
                setup = first_run.ensure_demo(
                    session, LocalBlobStore(Path(settings.data_dir) / "blobs"), settings,
                    demo_dataset or first_run.DEMO_DATASET_PATH,
                    None if demo_dataset else first_run.DEMO_TEST_DATASET_PATH)
    finally:
        engine.dispose()
    print(f"GreenTrainer API:  {url}  (docs: {url}/docs)")
    print(f"dashboard:         {url}{DASHBOARD}  (sign in with a team key)")
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"database:          {shown}  (schema at the latest migration)")
    print(f"admin key:         {admin_key}  (saved in {settings.data_dir}/admin.key)")
    if setup is not None:
        print(f"demo team key:     {setup.team_key}")
        print(f"demo data set:     {setup.dataset_id}"
              + (f"  (test set: {setup.test_dataset_id})" if setup.test_dataset_id else ""))
        print(f"demo job:          {setup.job_id}  (watch it: {url}{DASHBOARD}/jobs/{setup.job_id})")
        return setup.job_id if setup.job_created else None
    return None
