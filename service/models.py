"""SQLAlchemy 2 typed models: the database is the single source of truth for every job.

Ids are strings ``<prefix>_<12 hex ms timestamp><16 hex random>``: they sort by creation time
(so ``ORDER BY id`` is the cursor order of the list endpoints) and reveal nothing about other
teams' volume. Every schema change here needs an Alembic migration (`tests/service` checks that
the migrations and these models agree).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from service.states import JobStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 40


def new_id(prefix: str) -> str:
    """A time-ordered, unguessable id such as ``job_019a...``."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the zone; we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    max_concurrent_jobs: Mapped[int] = mapped_column(Integer, default=2)
    monthly_co2_budget_kg: Mapped[float | None] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="team")


class ApiKey(Base):
    """An API key, stored as the SHA-256 of the key (keys are 256-bit random, so a fast hash is
    enough and lets us look the key up by its hash)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    team: Mapped[Team | None] = relationship(back_populates="api_keys")

    __table_args__ = (
        CheckConstraint("is_admin OR team_id IS NOT NULL", name="team_or_admin"),
    )


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(Integer)
    source_field: Mapped[str] = mapped_column(String(100))
    target_field: Mapped[str] = mapped_column(String(100))
    storage_key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("team_id", "sha256", "source_field", "target_field",
                                       name="uq_datasets_team_content"),)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(32), default=JobStatus.VALIDATING.value)
    model: Mapped[str] = mapped_column(String(500))
    model_source: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))
    hyperparameters: Mapped[dict[str, Any]]
    rho_policy: Mapped[dict[str, Any]]
    # Copied out of the rho policy so that the scheduler can query them.
    region: Mapped[str | None] = mapped_column(String(64))
    deadline: Mapped[datetime | None]
    co2_budget_kg: Mapped[float | None] = mapped_column(Double)
    gpu_class: Mapped[str] = mapped_column(String(32), default="any")
    training_dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    validation_dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"))
    test_dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Written by the scheduler: when a waiting job is planned to start.
    planned_start_at: Mapped[datetime | None]
    # Written by the worker: lease, attempts, progress (see shared/reference/celery-pitfalls.md).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    last_finished_epoch: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    epochs: Mapped[list[JobEpoch]] = relationship(order_by="JobEpoch.epoch_index",
                                                  viewonly=True)

    __table_args__ = (
        UniqueConstraint("team_id", "idempotency_key", name="uq_jobs_team_idempotency_key"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s.value}'" for s in JobStatus) + ")", name="status"
        ),
        Index("ix_jobs_team_id_id", "team_id", "id"),
        # The dispatch queue: each team's waiting jobs in order (and running jobs per team).
        Index("ix_jobs_status_team_id_created_at_id", "status", "team_id", "created_at", "id"),
    )


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(16), default="info")
    type: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)


class JobEpoch(Base):
    """One finished epoch as the worker measured it. (job_id, epoch_index) is unique, so an epoch
    replayed after a crash can never be counted twice in FLOPs or CO2."""

    __tablename__ = "job_epochs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    epoch_index: Mapped[int] = mapped_column(Integer)
    rho: Mapped[float] = mapped_column(Double)
    carbon_intensity_g_per_kwh: Mapped[float | None] = mapped_column(Double)
    carbon_intensity_source: Mapped[str | None] = mapped_column(String(100))
    selected_tensor_count: Mapped[int] = mapped_column(Integer)
    selected_tensor_names: Mapped[list[str]]
    # FLOPs are floats: a 7B model over 1e9 tokens needs ~4e19, past the range of BIGINT.
    predicted_flops: Mapped[float] = mapped_column(Double)
    executed_flops: Mapped[float] = mapped_column(Double)
    full_ft_flops: Mapped[float] = mapped_column(Double)
    wall_seconds: Mapped[float] = mapped_column(Double)
    loss: Mapped[float | None] = mapped_column(Double)
    energy_kwh: Mapped[float | None] = mapped_column(Double)
    kg_co2: Mapped[float | None] = mapped_column(Double)
    energy_is_estimate: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("job_id", "epoch_index", name="uq_job_epochs_job_epoch"),
        CheckConstraint("rho > 0 AND rho <= 1", name="rho_range"),
    )


class Artifact(Base):
    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("job_id", "filename", name="uq_artifacts_job_filename"),)


class WorkerSlot(Base):
    """One worker process (one GPU, or one CPU worker) and the job it holds. The worker upserts
    its row every heartbeat; the dispatcher counts idle rows with a fresh heartbeat as free
    slots and reserves one for each job it starts (``job_id``); the worker that takes the job
    moves the reservation to its own row, so each dispatched or running job holds one slot."""

    __tablename__ = "worker_slots"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    gpu_class: Mapped[str] = mapped_column(String(32))
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    gpu_ids: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_worker_slots_gpu_class", "gpu_class"),)


class SignInFailure(Base):
    """The failed sign-in token bucket of one client address, shared by every API process
    (`service.signin_limit`). Only failed sign-ins write a row; a row whose bucket has refilled
    is deleted."""

    __tablename__ = "signin_failures"

    address: Mapped[str] = mapped_column(String(255), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_signin_failures_updated_at", "updated_at"),)
