"""`greentrainer jobs watch`: follow a job's event stream until it ends, as a live progress bar
at a terminal (epoch, rho, loss, CO2 so far) or as one line per event anywhere else."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from greentrainer.client import Client, Event, Job
from greentrainer.commands.api_cli import fail, print_json, show_bars

# "running  epoch 2/2  rho 0.50  loss 1.5000  CO2 2.00 g |█████     | 1/2 epochs done [00:42]"
BAR_FORMAT = "{desc} |{bar:24}| {n_fmt}/{total_fmt} epochs done [{elapsed}]"


class Progress:
    """What the stream has said so far about the epochs."""

    def __init__(self, job: Job) -> None:
        self.epochs = job.epochs or 0
        self.done = 0  # the stream replays the job's events from its first
        self.status = "submitted"
        self.epoch: int | None = None
        self.rho: float | None = None
        self.loss: float | None = None
        self.g_co2: float | None = None

    def note(self, event: Event) -> bool:
        """Fold ``event`` in; True when an epoch has just finished (its CO2 is then known)."""
        data = event.data or {}
        if event.type == "status" and isinstance(data.get("to"), str):
            self.status = data["to"]
        if "epoch_index" in data and isinstance(data["epoch_index"], int):
            self.epoch = data["epoch_index"]
        if isinstance(data.get("rho"), int | float):
            self.rho = float(data["rho"])
        if isinstance(data.get("loss"), int | float):
            self.loss = float(data["loss"])
        if event.type == "epoch" and self.epoch is not None:
            self.done = max(self.done, self.epoch + 1)
            return True
        return False

    def summary(self) -> list[str]:
        parts = [] if self.epoch is None else [f"epoch {self.epoch + 1}/{self.epochs or '?'}"]
        if self.rho is not None:
            parts.append(f"rho {self.rho:.2f}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.g_co2 is not None:
            parts.append(f"CO2 {self.g_co2:.2f} g")
        return parts


def watch(client: Client, args: argparse.Namespace) -> int:
    job = client.jobs.get(args.job_id)
    state = Progress(job)
    bar: Any = None
    if show_bars(args):
        from tqdm import tqdm

        print(f"watching {job.id} ({job.model}, {job.method}); Ctrl-C stops watching, not the job")
        bar = tqdm(total=state.epochs or None, desc=state.status, dynamic_ncols=True,
                   bar_format=BAR_FORMAT)
    try:
        for event in client.jobs.stream_events(job.id, timeout_s=args.timeout):
            if state.note(event):
                state.g_co2 = co2_grams(client, job.id)
            if args.json:
                continue
            if bar is None:
                print(f"{event.created_at:%H:%M:%S}  {event.type:<12} {event.message}"
                      + (f"  [{'  '.join(state.summary())}]"
                         if event.type in ("epoch", "epoch_start") else ""),
                      flush=True)
                continue
            if event.type in ("status", "created") or event.level in ("warning", "error"):
                bar.write(f"{event.type}: {event.message}")
            bar.n = state.done
            bar.set_description_str("  ".join([state.status, *state.summary()]), refresh=True)
    finally:
        if bar is not None:
            bar.close()
    final = client.jobs.get(job.id)
    if args.json:
        print_json(final)
    else:
        co2 = f", CO2 {state.g_co2:.2f} g" if state.g_co2 is not None else ""
        print(f"job {final.id} {final.status}: {state.done} epoch(s){co2}")
    if final.status == "succeeded":
        return 0
    reason = f": {final.error.code}: {final.error.message}" if final.error else ""
    return fail("greentrainer jobs watch", f"job {final.id} {final.status}{reason}", 1)


def co2_grams(client: Client, job_id: str) -> float | None:
    """The CO2 of the job's finished epochs, in grams (None while none was measured)."""
    measured = [e.kg_co2 for e in client.jobs.checkpoints(job_id) if e.kg_co2 is not None]
    return 1000 * sum(measured) if measured else None


def follow(client: Client, args: argparse.Namespace) -> int:
    """`jobs events --follow`: every event as it happens, until the job has finished."""
    for event in client.jobs.stream_events(args.job_id, after=args.after):
        if args.json:
            print_json(event)
        else:
            print(f"{event.id:>6}  {event.created_at:%Y-%m-%d %H:%M:%S}  {event.level:<7} "
                  f"{event.type:<12} {event.message}", flush=True)
    sys.stdout.flush()
    return 0
