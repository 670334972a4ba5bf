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
    Select,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship
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
    prefix: Mapped[str] = mapped_column(String(16), index=True)  # the sign-in limit's look-up
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
    kind: Mapped[str] = mapped_column(String(16), default="pairs")  # or "chat" (messages)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(Integer)
    source_field: Mapped[str] = mapped_column(String(100))
    target_field: Mapped[str] = mapped_column(String(100))
    storage_key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Deleted by its team: hidden everywhere, its bytes removed; the row stays for the finished
    # jobs that name it (service/datasets.py `delete_dataset`), and the same upload revives it.
    deleted_at: Mapped[datetime | None]

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
    gpus: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # on one worker
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
    # Written by the worker: lease, attempts, progress (service/pool/leases.py, docs/worker.md).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    last_finished_epoch: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A pause asked for (by the team or the carbon plan) and, once paused, why and until when
    # (service/pausing.py): set while a running job finishes its epoch and while it is paused.
    pause_reason: Mapped[str | None] = mapped_column(String(16))
    pause_requested_at: Mapped[datetime | None]
    resume_at: Mapped[datetime | None]
    pause_note: Mapped[str | None] = mapped_column(Text)
    # The submitter's name part for the fine-tuned model, and their key-value pairs.
    suffix: Mapped[str | None] = mapped_column(String(64))
    user_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)

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
    validation_loss: Mapped[float | None] = mapped_column(Double)
    energy_kwh: Mapped[float | None] = mapped_column(Double)
    kg_co2: Mapped[float | None] = mapped_column(Double)
    energy_is_estimate: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("job_id", "epoch_index", name="uq_job_epochs_job_epoch"),
        CheckConstraint("rho > 0 AND rho <= 1", name="rho_range"),
    )


class TeamMonthCo2(Base):
    """kg CO2 of a team's epochs recorded in one calendar month (UTC): a running total that every
    inserted `JobEpoch` adds to in the same transaction (`_count_epoch_co2`). The dispatcher's
    budget and fair-share check reads one row per team instead of summing the month's epochs,
    which grew with the pool's history (77 ms median at 300,000 epochs in a month, 1.1 ms now:
    benchmarks/co2_totals.py)."""

    __tablename__ = "team_month_co2"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"),
                                         primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-11"
    kg_co2: Mapped[float] = mapped_column(Double, default=0.0)


def month_key(when: datetime) -> str:
    """The calendar month (UTC) of ``when`` as `TeamMonthCo2.month` stores it."""
    return when.astimezone(UTC).strftime("%Y-%m")


def add_epoch_co2(connection: Connection, job_id: str, kg_co2: float, when: datetime) -> None:
    """Add ``kg_co2`` to the month total of ``job_id``'s team (an atomic upsert: concurrent
    epochs of one team both count)."""
    rows: Select[Any] = select(Job.team_id, literal(month_key(when), String),
                               literal(kg_co2, Double)).where(Job.id == job_id)
    insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
        TeamMonthCo2)
    upsert = insert.from_select(["team_id", "month", "kg_co2"], rows)
    connection.execute(upsert.on_conflict_do_update(
        index_elements=["team_id", "month"],
        set_={"kg_co2": TeamMonthCo2.kg_co2 + upsert.excluded.kg_co2}))


@event.listens_for(JobEpoch, "after_insert")
def _count_epoch_co2(_mapper: Mapper[JobEpoch], connection: Connection, epoch: JobEpoch) -> None:
    """An epoch row is unique per (job, epoch index), and this runs in the transaction that
    inserts it, so an epoch counts once: a replayed epoch's insert fails and rolls this back."""
    if epoch.kg_co2:
        add_epoch_co2(connection, epoch.job_id, epoch.kg_co2, epoch.created_at or utcnow())


@event.listens_for(JobEpoch, "after_update")
def _recount_epoch_co2(_mapper: Mapper[JobEpoch], connection: Connection, epoch: JobEpoch) -> None:
    """Epochs are records, but one whose CO2 or time is changed through the ORM moves its CO2
    from the old month's total to the new one."""
    state = inspect(epoch)
    kg, when = state.attrs.kg_co2.history, state.attrs.created_at.history
    if not (kg.has_changes() or when.has_changes()):
        return
    old_kg = kg.deleted[0] if kg.deleted else epoch.kg_co2
    old_when = when.deleted[0] if when.deleted else epoch.created_at
    if old_kg:
        add_epoch_co2(connection, epoch.job_id, -old_kg, old_when)
    if epoch.kg_co2:
        add_epoch_co2(connection, epoch.job_id, epoch.kg_co2, epoch.created_at)


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
    """One device of a worker process (``worker``) and the job it holds. The worker upserts its
    rows every heartbeat; the dispatcher counts idle rows with a fresh heartbeat as free slots
    and reserves a worker's rows for each job it starts (``job_id``): all of them, as a worker
    runs one job at a time (`service.pool.slots`)."""

    __tablename__ = "worker_slots"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    gpu_class: Mapped[str] = mapped_column(String(32))
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    gpu_ids: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str] = mapped_column(  # the process: by default ``name`` (one device)
        String(255), default=lambda context: context.get_current_parameters()["name"])
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_worker_slots_gpu_class", "gpu_class"), Index("ix_worker_slots_worker", "worker"))


class SignInFailure(Base):
    """The failed sign-in token bucket of one client address, shared by every API process
    (`service.signin_limit`). Only failed sign-ins write a row; a row whose bucket has refilled
    is deleted."""

    __tablename__ = "signin_failures"

    address: Mapped[str] = mapped_column(String(255), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_signin_failures_updated_at", "updated_at"),)


class EndedSession(Base):
    """A dashboard session signed out on the server: its cookie (signed, so not forgeable, but
    copyable) is refused from then on, not only deleted from the browser that signed out. Kept
    until the cookie would have expired anyway."""

    __tablename__ = "ended_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class IntensitySlot(Base):
    """A region's recorded grid intensity over one 30-minute UTC slot (slots since the Unix
    epoch, `greentrainer_carbon.history.slot_of`): the mean of the distinct provider readings
    the scheduler saw in it. Every forecast's history reads these rows
    (`service/pool/intensity.py`); rows older than the retention are deleted."""

    __tablename__ = "intensity_slots"

    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    g_per_kwh_sum: Mapped[float] = mapped_column(Double)
    readings: Mapped[int] = mapped_column(Integer)
    last_reading_at: Mapped[datetime] = mapped_column()
    source: Mapped[str] = mapped_column(String(100))


class WorkerThroughput(Base):
    """How fast a class of workers trains a model at full cost: seconds of a full fine-tuning
    epoch per training example, a moving average over the epochs measured. The planner's first
    estimate of a job's epoch time, before its own epochs are measured."""

    __tablename__ = "worker_throughput"

    gpu_class: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(500), primary_key=True)
    full_epoch_s_per_example: Mapped[float] = mapped_column(Double)
    epochs: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# The webhook tables live beside their code; importing them here registers them on `Base`
# wherever the models are loaded (the migrations' comparison included).
import service.webhooks.models  # noqa: E402,F401
