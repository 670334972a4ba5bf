"""Dispatch order as a pure function: which queued jobs start now, on which GPU class.

Fair share: a team's priority is its normalised usage u / share, where u is its recent usage
(GPU-hours or kg CO2 over the accounting window, whichever the caller measures) plus what this
round already gave it. Each pick goes to the eligible team with the lowest normalised usage
(ties: fewer running GPUs, then team name); inside a team, jobs go first-in-first-out. A job is
eligible when a free slot of a class that fits it exists and its team stays within its quota
(counted in GPUs: a job of ``gpus`` N counts N).

With ``workers`` (the free slots of each worker process, per class), a job of N GPUs needs one
worker with at least N free slots, never slots of two workers: it trains data-parallel on one
machine. It takes the smallest worker that holds it (best fit, so a one-GPU job leaves a
multi-GPU worker to the jobs that need it), whole: a worker runs one job at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from greentrainer_carbon.errors import SchedulerError


class DispatchError(SchedulerError):
    """Invalid dispatcher input (names the job or team and the field)."""


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    team: str
    gpu_class: str
    submitted_at: datetime
    gpus: int = 1
    expected_usage: float = 1.0  # charged to the team when it starts (same unit as recent_usage)

    def __post_init__(self) -> None:
        if self.gpus <= 0:
            raise DispatchError(f"job {self.job_id}: gpus must be > 0, got {self.gpus}")
        if self.expected_usage < 0:
            raise DispatchError(
                f"job {self.job_id}: expected_usage must be >= 0, got {self.expected_usage}"
            )


@dataclass(frozen=True)
class TeamUsage:
    team: str
    share: float = 1.0
    recent_usage: float = 0.0
    running_gpus: int = 0
    quota_gpus: int | None = None  # most GPUs the team may hold at once; None = no quota

    def __post_init__(self) -> None:
        if self.share <= 0:
            raise DispatchError(f"team {self.team}: share must be > 0, got {self.share}")
        if self.recent_usage < 0 or self.running_gpus < 0:
            raise DispatchError(f"team {self.team}: recent_usage and running_gpus must be >= 0")
        if self.quota_gpus is not None and self.quota_gpus < 0:
            raise DispatchError(f"team {self.team}: quota_gpus must be >= 0, got {self.quota_gpus}")


@dataclass(frozen=True)
class Dispatch:
    job: QueuedJob
    gpu_class: str
    worker: int | None = None  # the index in ``workers[gpu_class]`` of the worker it takes


def order_dispatch(
    queued: Sequence[QueuedJob],
    free_slots: Mapping[str, int],
    teams: Mapping[str, TeamUsage],
    fits: Mapping[str, Sequence[str]] | None = None,
    workers: Mapping[str, Sequence[int]] | None = None,
) -> list[Dispatch]:
    """The jobs to start now, in start order, each with the GPU class it gets (and, with
    ``workers``, the worker).

    `fits[c]` lists the classes (preferred first) a job needing class `c` may use; by default
    only `c` itself. `workers[c]`: the free slots of each worker of class `c` (then the slot
    count of `free_slots` is their sum). Raises DispatchError for a job of an unknown team or a
    negative slot count.
    """
    free = dict(free_slots)
    for gpu_class, count in free.items():
        if count < 0:
            raise DispatchError(f"free_slots[{gpu_class!r}] must be >= 0, got {count}")
    unknown = sorted({job.team for job in queued} - set(teams))
    if unknown:
        raise DispatchError(
            f"queued jobs belong to teams with no usage record: {', '.join(unknown)}"
        )
    # class -> free slots -> the workers with that many (best fit: the fewest slots that hold it)
    by_size: dict[str, dict[int, list[int]]] = {}
    for gpu_class, sizes in (workers or {}).items():
        for index in reversed(range(len(sizes))):  # popped from the end: lowest index first
            if sizes[index] < 0:
                raise DispatchError(f"workers[{gpu_class!r}][{index}] must be >= 0")
            by_size.setdefault(gpu_class, {}).setdefault(sizes[index], []).append(index)
    usage = {name: t.recent_usage for name, t in teams.items()}
    running = {name: t.running_gpus for name, t in teams.items()}
    queues: dict[str, list[QueuedJob]] = {}
    for job in sorted(queued, key=lambda j: (j.submitted_at, j.job_id)):
        queues.setdefault(job.team, []).append(job)

    def slot_for(job: QueuedJob) -> str | None:
        quota = teams[job.team].quota_gpus
        if quota is not None and running[job.team] + job.gpus > quota:
            return None
        for gpu_class in (fits or {}).get(job.gpu_class, [job.gpu_class]):
            if workers is None:
                if free.get(gpu_class, 0) >= job.gpus:
                    return gpu_class
            elif _smallest(by_size.get(gpu_class, {}), job.gpus) is not None:
                return gpu_class
        return None

    order: list[Dispatch] = []
    while True:
        best: tuple[tuple[float, int, str], QueuedJob, str] | None = None
        for team, jobs in queues.items():
            key = (usage[team] / teams[team].share, running[team], team)
            if best is not None and key >= best[0]:
                continue
            for job in jobs:  # FIFO, but a job that cannot fit does not block a later one that can
                fitting_class = slot_for(job)
                if fitting_class is not None:
                    best = (key, job, fitting_class)
                    break
        if best is None:
            return order
        _, job, gpu_class = best
        queues[job.team].remove(job)
        worker = None
        if workers is None:
            free[gpu_class] -= job.gpus
        else:  # the whole worker: it runs one job at a time
            room = by_size[gpu_class]
            size = _smallest(room, job.gpus)
            assert size is not None  # slot_for found it
            worker = room[size].pop()
            free[gpu_class] -= size
        running[job.team] += job.gpus
        usage[job.team] += job.expected_usage
        order.append(Dispatch(job, gpu_class, worker))


def _smallest(by_size: Mapping[int, Sequence[int]], gpus: int) -> int | None:
    """The fewest free slots, at least ``gpus``, that some worker still has (few distinct
    counts: 1, 2, 4, 8)."""
    return min((size for size, left in by_size.items() if size >= gpus and left), default=None)
