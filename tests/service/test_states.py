"""The job state machine: the documented path is legal, cancel works from every non-terminal
status, terminal statuses are final, and nothing skips validation or finishes without running."""

from __future__ import annotations

import pytest

from service.errors import IllegalTransition
from service.states import TERMINAL, TRANSITIONS, JobStatus, check_transition, is_legal

S = JobStatus
NON_TERMINAL = [s for s in JobStatus if s not in TERMINAL]


def test_documented_lifecycle_is_legal() -> None:
    path = [S.VALIDATING, S.QUEUED, S.WAITING_FOR_GREEN, S.RUNNING, S.SUCCEEDED]
    for current, target in zip(path, path[1:], strict=False):
        check_transition(current, target)


@pytest.mark.parametrize("status", NON_TERMINAL)
def test_every_non_terminal_status_can_be_cancelled_or_failed(status: JobStatus) -> None:
    assert is_legal(status, S.CANCELLED)
    assert is_legal(status, S.FAILED)


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_terminal_statuses_are_final(status: JobStatus) -> None:
    for target in JobStatus:
        with pytest.raises(IllegalTransition, match=f"already {status.value}"):
            check_transition(status, target)


@pytest.mark.parametrize(("current", "target"), [
    (S.VALIDATING, S.RUNNING),            # no job runs unvalidated
    (S.VALIDATING, S.WAITING_FOR_GREEN),
    (S.QUEUED, S.SUCCEEDED),              # success only after running
    (S.WAITING_FOR_GREEN, S.SUCCEEDED),
    (S.RUNNING, S.VALIDATING),
    (S.RUNNING, S.WAITING_FOR_GREEN),
])
def test_shortcuts_are_illegal_and_the_error_names_both_statuses(current: JobStatus,
                                                                 target: JobStatus) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition(current, target)
    assert current.value in info.value.message and target.value in info.value.message
    assert info.value.status_code == 409


def test_only_running_jobs_can_succeed() -> None:
    assert [s for s in JobStatus if is_legal(s, S.SUCCEEDED)] == [S.RUNNING]


def test_the_table_covers_every_status_and_names_only_statuses() -> None:
    assert set(TRANSITIONS) == set(JobStatus)
    assert all(targets <= set(JobStatus) for targets in TRANSITIONS.values())
    assert all(s not in TRANSITIONS[s] for s in JobStatus), "no self-transitions"
