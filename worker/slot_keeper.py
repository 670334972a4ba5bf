"""A worker process's slot rows (one per device): what the dispatcher may start jobs on
(service.pool.slots)."""

from __future__ import annotations

import logging
import os
import socket
import threading

from service.db import session_scope
from service.pool import slots
from worker.context import WorkerContext

log = logging.getLogger("worker.slot_keeper")


class SlotKeeper:
    """Refreshes this worker's slot rows every heartbeat until stopped, then deletes them."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="slot-heartbeat", daemon=True)

    def beat(self) -> None:
        """Refresh (or create) the worker's rows: one, or one per device (`slot_names`)."""
        ctx = self.ctx
        me = ctx.identity
        names = me.slot_names()
        devices = [str(gpu) for gpu in me.gpu_ids] if len(names) > 1 and me.gpu_ids else \
            [",".join(map(str, me.gpu_ids)) if me.gpu_ids else None]
        with session_scope(ctx.factory) as session:
            for name, gpu_ids in zip(names, devices, strict=True):
                slots.heartbeat(session, name, gpu_class=me.gpu_class,
                                hostname=socket.gethostname(), pid=os.getpid(),
                                gpu_ids=gpu_ids, worker=me.name)

    def _run(self) -> None:
        interval = self.ctx.pool.heartbeat_seconds
        while not self.stop.wait(interval):
            try:
                self.beat()
            except Exception:  # a database blip must not end the worker; the next beat retries
                log.warning("slot heartbeat failed", exc_info=True)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        with session_scope(self.ctx.factory) as session:
            slots.unregister(session, self.ctx.identity.name)
