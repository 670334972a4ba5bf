"""Dispatch order: fair share across teams, FIFO inside a team, quotas and GPU classes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.pool.fairness import DispatchError, QueuedJob, TeamUsage, order_dispatch

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def job(job_id, team, minutes, gpu_class="a100", **kw):
    return QueuedJob(job_id, team, gpu_class, T0 + timedelta(minutes=minutes), **kw)


def ids(order):
    return [d.job.job_id for d in order]


def test_the_team_furthest_below_its_share_starts_first_then_turns_alternate():
    queued = [
        job("heavy-1", "heavy", 0),
        job("heavy-2", "heavy", 1),
        job("light-1", "light", 5),
        job("light-2", "light", 6),
    ]
    teams = {
        "heavy": TeamUsage("heavy", share=1, recent_usage=10),
        "light": TeamUsage("light", share=1, recent_usage=2),
    }
    assert ids(order_dispatch(queued, {"a100": 3}, teams)) == ["light-1", "light-2", "heavy-1"]
    # With a share of 4, heavy's 10 GPU-hours weigh 2.5 against light's 2: light, then heavy
    # twice (2.5, 2.75 < 3), then a tie at 3 goes to the team holding fewer GPUs.
    teams["heavy"] = TeamUsage("heavy", share=4, recent_usage=10)
    assert ids(order_dispatch(queued, {"a100": 4}, teams)) == [
        "light-1",
        "heavy-1",
        "heavy-2",
        "light-2",
    ]


def test_jobs_of_one_team_start_first_in_first_out():
    queued = [job("late", "t", 9), job("early", "t", 1), job("middle", "t", 5)]
    assert ids(order_dispatch(queued, {"a100": 3}, {"t": TeamUsage("t")})) == [
        "early",
        "middle",
        "late",
    ]


def test_quota_caps_a_team_and_leaves_slots_to_others():
    queued = [job("a1", "a", 0), job("a2", "a", 1), job("b1", "b", 2)]
    teams = {
        "a": TeamUsage("a", running_gpus=1, quota_gpus=2),
        "b": TeamUsage("b", recent_usage=50),
    }
    assert ids(order_dispatch(queued, {"a100": 3}, teams)) == ["a1", "b1"]


def test_gpu_class_must_fit_and_a_blocked_job_does_not_block_the_next():
    queued = [job("big", "t", 0, "h100"), job("small", "t", 1, "t4")]
    order = order_dispatch(queued, {"t4": 1, "h100": 0}, {"t": TeamUsage("t")})
    assert [(d.job.job_id, d.gpu_class) for d in order] == [("small", "t4")]
    fits = {"t4": ["t4", "h100"]}
    order = order_dispatch(
        [job("small", "t", 1, "t4")], {"t4": 0, "h100": 1}, {"t": TeamUsage("t")}, fits
    )
    assert [(d.job.job_id, d.gpu_class) for d in order] == [("small", "h100")]
    two_gpus = [job("pair", "t", 0, gpus=2)]
    assert order_dispatch(two_gpus, {"a100": 1}, {"t": TeamUsage("t")}) == []


def test_bad_input_names_the_problem():
    with pytest.raises(DispatchError, match="no usage record: ghost"):
        order_dispatch([job("x", "ghost", 0)], {"a100": 1}, {})
    with pytest.raises(DispatchError, match=r"free_slots\['a100'\]"):
        order_dispatch([], {"a100": -1}, {})
    with pytest.raises(DispatchError, match="share"):
        TeamUsage("t", share=0)


def test_a_job_of_several_gpus_takes_one_worker_that_holds_it_best_fit():
    queued = [job("pair", "t", 0, gpus=2), job("one", "t", 1), job("quad", "t", 2, gpus=4)]
    # Free slots per worker: two of one, one of two. No worker has 4: "quad" waits.
    order = order_dispatch(queued, {"a100": 4}, {"t": TeamUsage("t")},
                           workers={"a100": [1, 2, 1]})
    assert [(d.job.job_id, d.worker) for d in order] == [("pair", 1), ("one", 0)]
    # Three single slots (3 >= 2 free in all) never make a pair.
    assert order_dispatch([job("pair", "t", 0, gpus=2)], {"a100": 3}, {"t": TeamUsage("t")},
                          workers={"a100": [1, 1, 1]}) == []
    # With no one-slot worker free, a one-GPU job takes a larger worker whole.
    order = order_dispatch([job("one", "t", 0), job("two", "t", 1)], {"a100": 2},
                           {"t": TeamUsage("t")}, workers={"a100": [2]})
    assert [(d.job.job_id, d.worker) for d in order] == [("one", 0)]
    with pytest.raises(DispatchError, match=r"workers\['a100'\]\[0\]"):
        order_dispatch([], {"a100": 0}, {}, workers={"a100": [-1]})
