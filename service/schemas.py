"""Request and response bodies of the API (pydantic). Field constraints here are the API's
input validation; their error locations become the ``field`` of a 422 response."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from greentrainer_carbon.rho_policy import DEFAULT_RHO, RhoPolicyKind, below_floor
from greentrainer_core.methods import DEFAULT_METHOD, METHOD_NAMES
from service.settings import MAX_GPUS_PER_JOB
from service.text import NulFree

# Numbers are strict: `true`, "3" and 3.0 are not numbers of epochs (an int is a float, though).
MIN_RHO = 0.001  # a thousandth of full fine-tuning's FLOPs; below it no tensor is worth selecting
Rho = Annotated[float, Field(ge=MIN_RHO, le=1, strict=True,
                             description=f"Share of full fine-tuning FLOPs, [{MIN_RHO}, 1].")]
Count = Annotated[int, Field(strict=True)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# A GPU class is a queue name (service/pool/queue.py): lowercase letters, digits, '-', '_', '.'.
GPU_CLASS_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,31}$"
# A grid region: an ISO 3166 alpha-2 country, optionally an Electricity Maps zone within it
# (US-CAL-CISO); which ones the deployment knows is checked at submission (service/jobs.py).
REGION_PATTERN = r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,16}){0,3}$"
T = TypeVar("T")
# One of the core's registered methods (greentrainer_core.methods.METHODS).
MethodName = Literal[METHOD_NAMES]  # type: ignore[valid-type]


def _future(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value <= datetime.now(UTC):
        raise ValueError("deadline must be in the future")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Floored(_Strict):
    """A rho policy below the quality floor (greentrainer_carbon.rho_policy.RHO_FLOOR) is refused
    unless the job accepts the loss with allow_low_rho."""

    allow_low_rho: bool = Field(default=False, description="Accept a rho below the quality floor.")

    @field_validator("rho", "rhos", "rho_min", check_fields=False)
    @classmethod
    def _floor(cls, value: Any, info: ValidationInfo) -> Any:
        kind = {"rho": RhoPolicyKind.FIXED, "rhos": RhoPolicyKind.SCHEDULE}.get(
            str(info.field_name), RhoPolicyKind.CARBON_AWARE)
        policy = {"type": kind, str(info.field_name): value, **info.data}
        problem = below_floor(policy)
        if problem:
            raise ValueError(problem)
        return value


class _Timed(_Floored):
    """What every rho policy may add: a deadline (the scheduler may then wait and pause for
    cleaner hours, and never finishes later than it) and the grid region the job's carbon is
    read in (default: the pool's region)."""

    region: NulFree | None = Field(default=None, min_length=1, max_length=64,
                                   pattern=REGION_PATTERN, description="Grid region, e.g. GB, "
                                   "FR or an Electricity Maps zone (default the pool's).")
    deadline: Annotated[AwareDatetime | None, AfterValidator(_future)] = Field(
        default=None, description="Latest finish, with a time zone (Z or +hh:mm), at most "
        "GREENTRAINER_POOL__MAX_DEADLINE_DAYS ahead; the scheduler may wait for cleaner hours "
        "until it. Without one the job runs as soon as a GPU is free.")


class FixedRho(_Timed):
    type: Literal[RhoPolicyKind.FIXED]
    rho: Rho


class ScheduleRho(_Timed):
    type: Literal[RhoPolicyKind.SCHEDULE]
    rhos: list[Rho] = Field(min_length=1, description="One rho per epoch.")


class CarbonAwareRho(_Timed):
    type: Literal[RhoPolicyKind.CARBON_AWARE]
    rho_min: Rho
    rho_max: Rho
    region: NulFree = Field(min_length=1, max_length=64, pattern=REGION_PATTERN,
                            description="Grid region, e.g. GB, FR or an Electricity Maps zone.")
    rho_target: Rho | None = Field(
        default=None, description="The job's mean rho under the mean-preserving mapping (more "
        "rho in cleaner hours, less in dirtier ones, this on average); default the middle of "
        "[rho_min, rho_max].")
    mapping: Literal["mean_preserving", "quantile"] = Field(
        default="mean_preserving", description="mean_preserving (the default) or quantile (rho "
        "follows the live intensity's rank in the forecast, mean not kept).")
    co2_budget_kg: Number | None = Field(default=None, gt=0)

    @field_validator("rho_max")
    @classmethod
    def _bounds(cls, rho_max: float, info: ValidationInfo) -> float:
        rho_min = info.data.get("rho_min")
        if rho_min is not None and rho_min > rho_max:
            raise ValueError(f"rho_min ({rho_min}) must not exceed rho_max ({rho_max})")
        return rho_max

    @field_validator("rho_target")
    @classmethod
    def _target(cls, target: float | None, info: ValidationInfo) -> float | None:
        low, high = info.data.get("rho_min"), info.data.get("rho_max")
        if target is not None and low is not None and high is not None and not low <= target <= high:
            raise ValueError(f"rho_target ({target}) must lie in [rho_min, rho_max] = "
                             f"[{low}, {high}]")
        return target


RhoPolicy = Annotated[FixedRho | ScheduleRho | CarbonAwareRho, Field(discriminator="type")]


class Hyperparameters(_Strict):
    epochs: Count = Field(default=3, ge=1, le=1000)
    batch_size: Count = Field(default=4, ge=1, le=4096)
    learning_rate: Number = Field(default=2e-5, gt=0, le=1)
    max_length: Count = Field(default=512, ge=8, le=131072)
    seed: Count = Field(default=0, ge=0, le=2**32 - 1)
    warmup_steps: Count = Field(default=0, ge=0, le=10**9)
    weight_decay: Number = Field(default=0.0, ge=0)
    gradient_accumulation_steps: Count = Field(default=1, ge=1, le=4096)
    early_stopping_patience: Count | None = Field(
        default=None, ge=1, le=1000,
        description="Stop after this many epochs without a lower validation loss (needs "
                    "validation_dataset).")


class JobCreate(_Strict):
    model: NulFree = Field(min_length=1, max_length=500,
                       description="Shipped alias, Hugging Face id in the local cache, or an "
                                   "allowed local path.")
    training_dataset: NulFree = Field(min_length=1, max_length=40,
                                      description="Id of an uploaded data set.")
    validation_dataset: NulFree | None = Field(default=None, max_length=40)
    test_dataset: NulFree | None = Field(default=None, max_length=40)
    method: MethodName = DEFAULT_METHOD
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    rho_policy: RhoPolicy = Field(default_factory=lambda: FixedRho(type=RhoPolicyKind.FIXED, rho=DEFAULT_RHO))
    gpu_class: NulFree = Field(default="any", min_length=1, max_length=32,
                               pattern=GPU_CLASS_PATTERN,
                               description="`any`, or a class the pool's workers serve.")
    gpus: Count = Field(default=1, ge=1, le=MAX_GPUS_PER_JOB,
                        description="Devices of one worker the job trains on at once "
                                    "(data-parallel); at most the pool's "
                                    "GREENTRAINER_POOL__MAX_GPUS_PER_JOB.")
    suffix: NulFree | None = Field(default=None, min_length=1, max_length=64,
                                   description="Added to the fine-tuned model's name.")
    metadata: dict[str, str] | None = Field(
        default=None, description="Up to 16 key-value pairs kept with the job (keys up to 64 "
                                  "characters, values up to 512), as OpenAI's `metadata`.")

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, metadata: dict[str, str] | None) -> dict[str, str] | None:
        if metadata is None:
            return None
        if len(metadata) > 16:
            raise ValueError(f"at most 16 pairs, not {len(metadata)}")
        for key, value in metadata.items():
            if not 0 < len(key) <= 64:
                raise ValueError(f"key {key[:70]!r} must have 1 to 64 characters")
            if len(value) > 512:
                raise ValueError(f"the value of {key!r} has {len(value)} characters; at most 512")
            if "\x00" in key or "\x00" in value:
                raise ValueError("NUL characters are not allowed")
        return metadata


class JobError(BaseModel):
    code: str
    message: str


class JobPause(BaseModel):
    reason: str = Field(description="Who asked: `user` (the team) or `carbon` (the carbon plan, "
                                    "waiting for a cleaner hour).")
    pending: bool = Field(description="True while a running job finishes its current epoch "
                                      "before it pauses.")
    requested_at: datetime | None
    resume_at: datetime | None = Field(description="The planned restart of a carbon pause; a "
                                                   "team's pause waits for `resume`.")
    note: str | None


class JobOut(BaseModel):
    object: Literal["job"] = "job"
    id: str
    team_id: str
    status: str
    model: str
    model_source: str
    method: str
    hyperparameters: dict[str, Any]
    rho_policy: dict[str, Any]
    gpu_class: str
    gpus: int = 1
    training_dataset: str
    validation_dataset: str | None
    test_dataset: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    planned_start_at: datetime | None
    last_finished_epoch: int | None
    error: JobError | None
    result: dict[str, Any] | None
    pause: JobPause | None = Field(default=None, description="A pause asked for or in effect.")
    suffix: str | None = None
    metadata: dict[str, str] | None = None


class Page(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    last_id: str | None = Field(default=None, description="Pass as `after` to get the next page.")


class EventOut(BaseModel):
    id: int
    job_id: str
    created_at: datetime
    level: str
    type: str
    message: str
    data: dict[str, Any] | None


class EpochFields(BaseModel):
    """One finished epoch as the worker recorded it (shared by the API and the dashboard's series)."""

    model_config = ConfigDict(from_attributes=True)

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
    validation_loss: float | None = None
    energy_kwh: float | None
    kg_co2: float | None
    energy_is_estimate: bool


class EpochOut(EpochFields):
    created_at: datetime


class ArtifactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    job_id: str
    kind: str
    filename: str
    size_bytes: int
    sha256: str
    created_at: datetime


class CheckpointMetrics(BaseModel):
    """The recorded figures of the epoch a checkpoint ends (null: not recorded)."""

    rho: float | None = None
    loss: float | None = None
    validation_loss: float | None = None
    executed_flops: float | None = None
    kg_co2: float | None = None


class CheckpointOut(BaseModel):
    object: Literal["checkpoint"] = "checkpoint"
    id: str = Field(description="The checkpoint's artifact id.")
    job_id: str
    epoch_index: int
    filename: str
    size_bytes: int
    sha256: str
    created_at: datetime
    metrics: CheckpointMetrics


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: Literal["dataset"] = "dataset"
    id: str
    team_id: str
    name: str
    format: str
    kind: Literal["pairs", "chat"] = Field(description="pairs: source/target rows; chat: "
                                           "OpenAI chat JSONL (messages)")
    sha256: str
    size_bytes: int
    row_count: int
    source_field: str
    target_field: str
    created_at: datetime


class TeamCreate(_Strict):
    name: NulFree = Field(min_length=1, max_length=200)
    max_concurrent_jobs: int = Field(default=2, ge=1, le=10000)
    monthly_co2_budget_kg: float | None = Field(default=None, gt=0)


class TeamUpdate(_Strict):
    max_concurrent_jobs: int | None = Field(default=None, ge=1, le=10000)
    monthly_co2_budget_kg: float | None = Field(default=None, gt=0)  # null = no budget

    @field_validator("max_concurrent_jobs")
    @classmethod
    def _not_null(cls, value: int | None) -> int:
        if value is None:  # only an explicit null reaches here (defaults are not validated)
            raise ValueError("must be an integer >= 1; omit the field to keep the current value")
        return value


class TeamUsageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    active_jobs: int = Field(description="Jobs not yet finished (against max_concurrent_jobs).")
    co2_kg_this_month: float = Field(description="CO2 of epochs recorded this calendar month "
                                                 "(UTC), against monthly_co2_budget_kg.")


class TeamOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    max_concurrent_jobs: int
    monthly_co2_budget_kg: float | None
    created_at: datetime
    usage: TeamUsageOut | None = None


class ApiKeyOut(BaseModel):
    id: str
    team_id: str | None
    prefix: str
    key: str = Field(description="The key itself: shown once, store it now.")


class TeamWithKey(TeamOut):
    api_key: ApiKeyOut


class Me(BaseModel):
    team_id: str | None
    is_admin: bool
