"""Settings of the GPU pool: leases, heartbeats, retries, the dispatcher's pace (docs/worker.md
explains each value). Every field reads GREENTRAINER_<FIELD IN UPPER CASE>."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PoolSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GREENTRAINER_", extra="ignore")

    lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a worker's lease on a running job lasts "
        "without renewal; a job whose lease expired is re-queued by the reconciler."
    )
    heartbeat_seconds: float = Field(
        default=2.0, gt=0, description="How often a worker renews its lease and slot heartbeat "
        "and looks for a cancel (the cancel latency)."
    )
    pickup_seconds: float = Field(
        default=120.0, gt=0, description="How long a dispatched job may wait for a worker to "
        "take it before the reconciler re-queues it (a message the broker lost)."
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Tries of one job (worker crashes, transient errors) "
        "before it is failed."
    )
    visibility_timeout_seconds: int = Field(
        default=7 * 24 * 3600, gt=0, description="Redis visibility timeout: above the longest "
        "job, so that Redis never hands a running job to a second worker."
    )
    dispatch_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often `greentrainer scheduler --dispatch` runs a "
        "reconcile, plan and dispatch pass."
    )
    default_epoch_seconds: float = Field(
        default=1800.0, gt=0, description="Epoch duration assumed for green-window planning "
        "until the pool has measured epochs of the job's model."
    )
