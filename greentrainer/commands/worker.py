"""`greentrainer worker`: one Celery worker process for one GPU (or a CPU worker).

    greentrainer worker --gpu-class a100 --gpus 0     # CUDA_VISIBLE_DEVICES=0, queue gpu.a100
    greentrainer worker --gpu-class a100 --gpus 0,1   # two devices: jobs of up to gpus 2
    greentrainer worker                               # CPU worker, class "cpu" (embedded mode)

The process keeps its slot row (one per device) in the database fresh (the dispatcher's view of
the pool) and consumes with the solo pool, one job at a time, in this process: its class queue
(one device), or its own queue (several devices: the dispatcher reserves all of them for one job,
which trains data-parallel on them, docs/worker.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

log = logging.getLogger("greentrainer.commands.worker")


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
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus {text!r}: expected ids such as 0 or 0,1") \
            from None
    if len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"--gpus {text!r}: an id is given twice")
    return ids


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="greentrainer worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu-class", help="GPU class this worker serves (its queue is "
                        "gpu.<class>); default: cpu without --gpus, else required")
    parser.add_argument("--gpus", type=_gpu_ids, help="GPU ids this worker owns "
                        "(sets CUDA_VISIBLE_DEVICES; CodeCarbon measures these); several ids: "
                        "one slot each, all given to one job at a time (jobs of up to that many "
                        "gpus, data-parallel)")
    parser.add_argument("--country", default="GBR", help="ISO3 country for CodeCarbon's "
                        "fallback energy mix when no intensity is known (default GBR)")
    parser.add_argument("--loglevel", help="log level (default: GREENTRAINER_LOG_LEVEL, INFO)")
    parser.add_argument("--metrics-port", type=int, default=0, help="serve this worker's "
                        "Prometheus metrics (GPU utilisation, energy, job progress) on this port "
                        "(default 0: none)")
    args = parser.parse_args(argv)
    if args.gpus and not args.gpu_class:
        parser.error("--gpus needs --gpu-class (e.g. --gpu-class a100 --gpus 0)")
    gpu_class = args.gpu_class or "cpu"
    for name, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)
    if args.gpus:
        # Before torch is imported anywhere in this process.
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, args.gpus))
    from sqlalchemy.exc import OperationalError

    from service import logs
    from service.db import STARTUP_DATABASE_PATIENCE_S, check_schema
    from service.errors import ServiceError
    from service.pool.queue import queue_name, worker_route
    from service.settings import get_settings
    from worker import context

    settings = get_settings()
    loglevel = args.loglevel or settings.log_level
    logs.configure(loglevel, settings.log_format)
    ctx = context.build(settings, gpu_class, args.gpus, args.country)
    try:
        check_schema(ctx.factory.kw["bind"], patience_s=STARTUP_DATABASE_PATIENCE_S)
    except ServiceError as exc:
        print(f"greentrainer worker: {exc.message}", file=sys.stderr)
        return 2
    from worker.slot_keeper import SlotKeeper
    from worker.tasks import app

    if args.metrics_port:
        from worker.exporter import METRICS

        METRICS.serve(args.metrics_port, args.gpus)
    keeper = SlotKeeper(ctx)
    try:
        keeper.beat()
    except OperationalError:  # the database went away after the check: the keeper beats again
        logging.getLogger("greentrainer.worker").warning("slot heartbeat failed", exc_info=True)
    keeper.thread.start()
    queue = queue_name(gpu_class if ctx.identity.devices == 1 else
                       worker_route(gpu_class, ctx.identity.name))
    print(f"worker {ctx.identity.name}: queue {queue}", file=sys.stderr)
    try:
        app.worker_main(["worker", "--pool", "solo", "--concurrency", "1",
                         "--queues", queue, "--hostname",
                         f"{gpu_class}-{os.getpid()}@{socket.gethostname()}",
                         "--without-gossip", "--without-mingle", "--loglevel", loglevel])
    finally:
        keeper.close()
    return 0
