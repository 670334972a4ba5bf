"""`greentrainer up`: everything in one process group with embedded defaults: migrate, print an
admin key (and the demo's), start the worker and the scheduler next to the API, serve it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from greentrainer.commands.serve import add_serve_arguments, port_taken, run_api, settings_with
from service.db import make_engine, upgrade
from service.errors import ServiceError
from service.settings import Settings


def up_main(argv: list[str]) -> int:
    """Run everything with embedded defaults: migrate, print an admin key, start the worker and
    scheduler (those in this build) and serve the API. With --demo also create a demo team,
    upload the sample data set and submit a short job."""
    parser = argparse.ArgumentParser(prog="greentrainer up", description=up_main.__doc__)
    add_serve_arguments(parser)
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
    settings = settings_with(args.database_url)
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
    from greentrainer import companions

    processes = [] if args.api_only else companions.start(settings.database_url)
    supervisor = companions.Supervisor(processes, settings.database_url).begin()
    try:
        return run_api(settings, args.host, args.port, workers=args.workers, queued=demo_job)
    finally:
        supervisor.stop()


def _prepare(settings: Settings, demo: bool, demo_dataset: Path | None, host: str | None,
             port: int | None) -> str | None:
    """Migrate, make the admin key (and the demo), print them; returns a new demo job's id."""
    from service import demo as first_run
    from service.dashboard.router import PREFIX as DASHBOARD
    from service.db import make_session_factory, session_scope
    from service.storage import make_store

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
                    session, make_store(settings), settings,
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
