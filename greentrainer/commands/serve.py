"""`greentrainer serve` and `greentrainer migrate`: run the API, upgrade the schema
(see docs/service.md)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

from service.db import current_revision, make_engine, upgrade
from service.errors import ServiceError
from service.settings import Settings


def settings_with(database_url: str | None = None) -> Settings:
    """The process's settings, with the database URL a command's --database-url gave."""
    settings = Settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default GREENTRAINER_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default GREENTRAINER_PORT, 8000)")
    parser.add_argument("--database-url", help="override GREENTRAINER_DATABASE_URL")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes (default 1; about one per CPU core)")


def run_api(settings: Settings, host: str | None, port: int | None, *, workers: int = 1,
         queued: str | None = None) -> int:
    import uvicorn

    from greentrainer.serving import proxy_options
    from service import logs
    from service.app import create_app
    from service.dispatch import notify
    from service.heap import settle_heap

    if workers > 1:  # /metrics sums the request counters of every process (service/metrics.py)
        from service.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

        prepare_multiprocess_dir(Path(os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(
            prefix="greentrainer-metrics-")))
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
        from greentrainer import serving

        if serving.reuse_port_available() and port:  # a socket per process (see serving.py)
            try:
                return serving.serve_processes(host, port, workers)
            except OSError as exc:
                print(f"greentrainer: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
                return 2
        uvicorn.run("service.app:create_served_app", factory=True, workers=workers, host=host,
                    port=port, log_config=None, access_log=False,
                    **proxy_options(settings.trusted_proxies))  # type: ignore[arg-type]
    else:
        settle_heap()
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False,
                    **proxy_options(settings.trusted_proxies))  # type: ignore[arg-type]
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
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    return run_api(settings_with(args.database_url), args.host, args.port, workers=args.workers)


def migrate_main(argv: list[str]) -> int:
    """Upgrade the database schema to the latest migration (or to --revision)."""
    parser = argparse.ArgumentParser(prog="greentrainer migrate", description=migrate_main.__doc__)
    parser.add_argument("--database-url", help="override GREENTRAINER_DATABASE_URL")
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)
    settings = settings_with(args.database_url)
    upgrade(settings.database_url, args.revision)
    engine = make_engine(settings.database_url)
    try:
        where = engine.url.render_as_string(hide_password=True)
        print(f"{where}: at migration {current_revision(engine)}")
    finally:
        engine.dispose()
    return 0
