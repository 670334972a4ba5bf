"""`greentrainer dispatcher` (also `greentrainer scheduler --dispatch`): the pool's reconcile,
plan and dispatch loop as a process, with the webhook sender as a thread beside it."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from greentrainer_carbon.config import build_chain, region_chain
from greentrainer_carbon.providers.chain import ProviderChain
from greentrainer_carbon.readings import CarbonReading
from service import logs
from service.db import STARTUP_DATABASE_PATIENCE_S, check_schema, make_engine, make_session_factory
from service.errors import ServiceError
from service.heap import settle_heap
from service.pool.carbon_plan import CarbonPlanning
from service.pool.loop import run_forever
from service.pool.queue import RUN_JOB_TASK, make_celery, queue_name
from service.settings import get_settings
from service.webhooks.sender import WebhookSender

log = logging.getLogger("greentrainer.commands.dispatcher")


def dispatch_forever() -> int:
    """Run until SIGTERM/SIGINT; returns 2 on an un-migrated database."""
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    engine = make_engine(settings.database_url, pool_size=4)  # the loop's passes, with room to spare
    try:
        check_schema(engine, patience_s=STARTUP_DATABASE_PATIENCE_S)
    except ServiceError as exc:
        print(f"greentrainer scheduler: {exc.message}", file=sys.stderr)
        return 2
    pool = settings.pool
    celery = make_celery(settings, pool)
    chain = build_chain(settings.carbon)

    def send(job_id: str, gpu_class: str) -> None:
        celery.send_task(RUN_JOB_TASK, args=[job_id], queue=queue_name(gpu_class))

    regional: dict[str, ProviderChain] = {}

    def current(region: str | None) -> CarbonReading:
        """The intensity now in the job's region (the pool's chain when it names none)."""
        if not region:
            return chain.latest().value
        if region not in regional:
            regional[region] = region_chain(settings.carbon, region)
        return regional[region].latest().value

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("scheduler: dispatching every "
          f"{pool.dispatch_interval_seconds:g} s", file=sys.stderr)
    factory = make_session_factory(engine)
    planning = CarbonPlanning(settings, factory)  # the forecasts the planner reads (history too)
    settle_heap()  # what is loaded by now lives as long as the process (service/heap.py)
    sender = WebhookSender(factory, settings.webhooks, stop).start()  # webhooks, beside the loop
    try:
        run_forever(factory, pool, send, planning, stop, current, settings.carbon)
    finally:
        stop.set()
        sender.join(settings.webhooks.timeout_seconds + 5)
        planning.close()
        for one in (chain, *regional.values()):
            one.close()
        engine.dispose()
    return 0


def dispatcher_main(argv: list[str] | None = None) -> int:
    """`greentrainer dispatcher`: run the dispatcher and reconciler until SIGTERM or SIGINT."""
    import argparse

    parser = argparse.ArgumentParser(prog="greentrainer dispatcher", description=(
        "Run the database-backed dispatcher and reconciler until stopped: every "
        "GREENTRAINER_POOL__DISPATCH_INTERVAL_SECONDS it re-queues jobs of dead workers, notes "
        "the grid's intensity for new jobs, plans green windows and starts what fits "
        "(docs/worker.md). The same as `greentrainer scheduler --dispatch`."))
    parser.parse_args(argv)
    return dispatch_forever()
