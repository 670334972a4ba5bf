"""`greentrainer worker`: one Celery worker process for one GPU (or a CPU worker).

    greentrainer worker --gpu-class a100 --gpus 0     # CUDA_VISIBLE_DEVICES=0, queue gpu.a100
    greentrainer worker                               # CPU worker, class "cpu" (embedded mode)

The process keeps its slot row in the database fresh (the dispatcher's view of the pool) and
consumes its class queue with the solo pool: one job at a time, in this process.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading

log = logging.getLogger("worker.cli")


# A worker's log says what its jobs do (worker.runner), not how its libraries feel. Progress bars
# are off: a job's progress goes to its events and this log, and the bars of model loading and
# data set building (tqdm, Hugging Face) would reach the log through Celery's stdout redirect as
# dozens of WARNING lines per job. CodeCarbon logs three lines each epoch ("offline tracker
# init", "Multiple instances ... allowed", the forced intensity) before it applies the tracker's
# log level; a failed measurement is logged by worker.energy. Read when those libraries are
# imported, so set before any of them is. A variable the operator set is kept.
QUIET_LIBRARIES = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                   "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "CODECARBON_LOG_LEVEL": "error"}


def _gpu_ids(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus {text!r}: expected ids such as 0 or 0,1") \
            from None


class SlotKeeper:
    """Refreshes this worker's slot row every heartbeat until stopped, then deletes it."""

    def __init__(self, ctx: object) -> None:
        self.ctx = ctx
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="slot-heartbeat", daemon=True)

    def beat(self) -> None:
        from service.db import session_scope
        from service.scheduler import slots

        ctx = self.ctx
        me = ctx.identity  # type: ignore[attr-defined]
        with session_scope(ctx.factory) as session:  # type: ignore[attr-defined]
            slots.heartbeat(session, me.name, gpu_class=me.gpu_class,
                            hostname=socket.gethostname(), pid=os.getpid(),
                            gpu_ids=",".join(map(str, me.gpu_ids)) if me.gpu_ids else None)

    def _run(self) -> None:
        interval = self.ctx.pool.heartbeat_seconds  # type: ignore[attr-defined]
        while not self.stop.wait(interval):
            try:
                self.beat()
            except Exception:  # a database blip must not end the worker; the next beat retries
                log.warning("slot heartbeat failed", exc_info=True)

    def close(self) -> None:
        from service.db import session_scope
        from service.scheduler import slots

        self.stop.set()
        self.thread.join(timeout=10)
        with session_scope(self.ctx.factory) as session:  # type: ignore[attr-defined]
            slots.unregister(session, self.ctx.identity.name)  # type: ignore[attr-defined]


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="greentrainer worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu-class", help="GPU class this worker serves (its queue is "
                        "gpu.<class>); default: cpu without --gpus, else required")
    parser.add_argument("--gpus", type=_gpu_ids, help="GPU ids this worker owns "
                        "(sets CUDA_VISIBLE_DEVICES; CodeCarbon measures these)")
    parser.add_argument("--country", default="GBR", help="ISO3 country for CodeCarbon's "
                        "fallback energy mix when no intensity is known (default GBR)")
    parser.add_argument("--loglevel", help="log level (default: GREENTRAINER_LOG_LEVEL, INFO)")
    args = parser.parse_args(argv)
    if args.gpus and not args.gpu_class:
        parser.error("--gpus needs --gpu-class (e.g. --gpu-class a100 --gpus 0)")
    gpu_class = args.gpu_class or "cpu"
    for name, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)
    if args.gpus:
        # Before torch is imported anywhere in this process.
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, args.gpus))
    from service import logs
    from service.db import check_schema
    from service.errors import ServiceError
    from service.settings import get_settings
    from worker import context
    from worker.celery_app import queue_name

    settings = get_settings()
    loglevel = args.loglevel or settings.log_level
    logs.configure(loglevel, settings.log_format)
    ctx = context.build(settings, gpu_class, args.gpus, args.country)
    try:
        check_schema(ctx.factory.kw["bind"])
    except ServiceError as exc:
        print(f"greentrainer worker: {exc.message}", file=sys.stderr)
        return 2
    from worker.tasks import app

    keeper = SlotKeeper(ctx)
    keeper.beat()
    keeper.thread.start()
    print(f"worker {ctx.identity.name}: queue {queue_name(gpu_class)}", file=sys.stderr)
    try:
        app.worker_main(["worker", "--pool", "solo", "--concurrency", "1",
                         "--queues", queue_name(gpu_class), "--hostname",
                         f"{gpu_class}-{os.getpid()}@{socket.gethostname()}",
                         "--without-gossip", "--without-mingle", "--loglevel", loglevel])
    finally:
        keeper.close()
    return 0
