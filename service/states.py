"""The job state machine: every legal status change lives here and nowhere else.

    validating -> queued -> waiting_for_green -> running -> succeeded | failed | cancelled
    queued | waiting_for_green | running -> paused -> queued

A job may be cancelled from every non-terminal status and may fail from every non-terminal
status (validation, dispatch or training errors). The scheduler may also start a queued job
at once (queued -> running), put a waiting job back in the queue when its plan changes
(waiting_for_green -> queued), and re-queue a running job whose worker died (running -> queued).
A job waiting for a GPU is paused at once (queued | waiting_for_green -> paused); a running
one at its next epoch boundary, by its worker (running -> paused); resuming re-queues it
(paused -> queued). Pauses are asked for by the team or by the carbon plan
(`service/pausing.py`).
"""

from __future__ import annotations

from enum import StrEnum

from service.errors import IllegalTransition


class JobStatus(StrEnum):
    VALIDATING = "validating"
    QUEUED = "queued"
    WAITING_FOR_GREEN = "waiting_for_green"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
)

_ENDINGS = {JobStatus.FAILED, JobStatus.CANCELLED}

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.VALIDATING: frozenset({JobStatus.QUEUED, *_ENDINGS}),
    JobStatus.QUEUED: frozenset({JobStatus.WAITING_FOR_GREEN, JobStatus.RUNNING,
                                 JobStatus.PAUSED, *_ENDINGS}),
    JobStatus.WAITING_FOR_GREEN: frozenset({JobStatus.QUEUED, JobStatus.RUNNING,
                                            JobStatus.PAUSED, *_ENDINGS}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.QUEUED, JobStatus.PAUSED,
                                  *_ENDINGS}),
    JobStatus.PAUSED: frozenset({JobStatus.QUEUED, *_ENDINGS}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

# Statuses in which a job waits for a GPU (the queue length metric counts these).
WAITING: frozenset[JobStatus] = frozenset({JobStatus.QUEUED, JobStatus.WAITING_FOR_GREEN})
# Statuses that count against a team's concurrent-jobs quota (a paused job keeps its place).
ACTIVE: frozenset[JobStatus] = frozenset(JobStatus) - TERMINAL


def is_legal(current: JobStatus, target: JobStatus) -> bool:
    """True when the state machine allows ``current -> target``."""
    return target in TRANSITIONS[current]


def check_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise `IllegalTransition` (naming both statuses) unless ``current -> target`` is legal."""
    if not is_legal(current, target):
        if current in TERMINAL:
            raise IllegalTransition(
                f"job is already {current.value}; it cannot become {target.value}", field="status")
        raise IllegalTransition(f"a {current.value} job cannot become {target.value}",
                                field="status")
