"""What the API returns, as typed records: one dataclass per object of the native API
(`service/schemas.py`: JobOut, DatasetOut, EventOut, EpochOut, ArtifactOut, Page).

Fields the server adds later are kept in ``raw`` and do not break an older client; a field
missing from the answer is None (or its default).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, TypeVar, get_type_hints

# A job's terminal statuses: `wait()` and `watch` stop at these (service/states.py TERMINAL).
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})

R = TypeVar("R", bound="_Record")


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class _Record:
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls: type[R], body: dict[str, Any]) -> R:
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "raw":
                continue
            value = body.get(f.name)
            if "datetime" in str(hints[f.name]):
                value = _time(value)
            elif f.name == "error" and isinstance(value, dict):
                value = JobError(code=str(value.get("code", "")), message=str(value.get("message", "")))
            values[f.name] = value
        return cls(raw=body, **values)


@dataclass(frozen=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True)
class Job(_Record):
    id: str
    team_id: str
    status: str
    model: str
    model_source: str
    method: str
    hyperparameters: dict[str, Any]
    rho_policy: dict[str, Any]
    gpu_class: str
    training_dataset: str
    validation_dataset: str | None
    test_dataset: str | None
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    planned_start_at: datetime | None
    last_finished_epoch: int | None
    error: JobError | None
    result: dict[str, Any] | None

    @property
    def done(self) -> bool:
        """Whether the job is in a terminal status (succeeded, failed, cancelled)."""
        return self.status in TERMINAL_STATUSES

    @property
    def epochs(self) -> int | None:
        """How many epochs the job asked for."""
        value = (self.hyperparameters or {}).get("epochs")
        return int(value) if isinstance(value, int) else None


@dataclass(frozen=True)
class Dataset(_Record):
    id: str
    team_id: str
    name: str
    format: str
    sha256: str
    size_bytes: int
    row_count: int
    source_field: str
    target_field: str
    created_at: datetime | None


@dataclass(frozen=True)
class Event(_Record):
    """One entry of a job's event log (``type``: created, status, epoch_start, progress, epoch,
    ...; ``data``: the type's numbers, e.g. ``epoch_index``, ``rho``, ``loss``)."""

    id: int
    job_id: str
    created_at: datetime | None
    level: str
    type: str
    message: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class Epoch(_Record):
    """A finished epoch as the worker recorded it: its checkpoint's metrics."""

    epoch_index: int
    rho: float
    carbon_intensity_g_per_kwh: float | None
    carbon_intensity_source: str | None
    selected_tensor_count: int
    selected_tensor_names: list[str]
    predicted_flops: float
    executed_flops: float
    full_ft_flops: float
    wall_seconds: float
    loss: float | None
    energy_kwh: float | None
    kg_co2: float | None
    energy_is_estimate: bool
    created_at: datetime | None


@dataclass(frozen=True)
class Artifact(_Record):
    """A file a job keeps (kind: model, delta, checkpoint, metrics, ...)."""

    id: str
    job_id: str
    kind: str
    filename: str
    size_bytes: int
    sha256: str
    created_at: datetime | None


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list. ``last_id`` is the ``after`` of the next page when ``has_more``."""

    data: list[T]
    has_more: bool
    last_id: str | None

    def __iter__(self) -> Any:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @classmethod
    def from_json(cls, body: dict[str, Any], item: type[Any]) -> Page[Any]:
        return cls(data=[item.from_json(row) for row in body.get("data", [])],
                   has_more=bool(body.get("has_more")), last_id=body.get("last_id"))
