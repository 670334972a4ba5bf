"""A ``POST /v1/fine_tuning/jobs`` body, and its translation into the native `JobCreate` that
`service.jobs.submit_job` records: OpenAI's hyperparameters (each may be ``"auto"``, resolved
here from the training file's size and recorded on the job), ``method``, ``seed``, ``suffix``,
``metadata``, and GreenTrainer's own options in the extra ``greentrainer`` field."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema

from greentrainer_carbon.rho_policy import DEFAULT_RHO, RhoPolicyKind
from greentrainer_core.methods import DEFAULT_METHOD
from service.errors import InvalidInput
from service.http_errors import validation_details
from service.routers.openai.objects import BASE_LEARNING_RATE
from service.schemas import JobCreate, MethodName, RhoPolicy
from service.text import NulFree

Auto = Literal["auto"]
MAX_SEED = 2**31 - 1
# "auto" rules, from the number of training examples n (docs/openai.md):
AUTO_EXAMPLES_SEEN = 3000   # n_epochs = clamp(ceil(3000 / n), 1, 10): small files get more passes
AUTO_MAX_EPOCHS = 10
AUTO_BATCH_SHARE = 0.002    # batch_size = clamp(round(0.2% of n), 1, 256), as OpenAI documents
AUTO_MAX_BATCH = 256


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _auto_or(kind: type, low: float, high: float) -> Any:
    """``"auto"`` or a number of ``kind`` in (``low``, ``high``]; one error naming both."""
    what = "an integer" if kind is int else "a number"

    def check(value: Any) -> Any:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                (kind is int and not float(value).is_integer()) or not low < value <= high:
            raise ValueError(f"must be 'auto' or {what} above {low:g} and at most {high:g}")
        return kind(value)

    return Annotated[Auto | int | float, PlainValidator(check),
                     WithJsonSchema({"anyOf": [{"const": "auto"}, {"type": "number"}]})]


class OpenAIHyperparameters(_Strict):
    n_epochs: _auto_or(int, 0, 1000) = "auto"  # type: ignore[valid-type]
    batch_size: _auto_or(int, 0, 4096) = "auto"  # type: ignore[valid-type]
    learning_rate_multiplier: _auto_or(float, 0, 10_000) = "auto"  # type: ignore[valid-type]


class SupervisedMethod(_Strict):
    hyperparameters: OpenAIHyperparameters | None = None


class MethodIn(_Strict):
    type: Literal["supervised"] = Field(description="Only supervised fine-tuning is offered.")
    supervised: SupervisedMethod | None = None


class GreenTrainerOptions(_Strict):
    """What the OpenAI API has no field for; send it with ``extra_body={"greentrainer": {...}}``."""

    method: MethodName = DEFAULT_METHOD
    rho_policy: RhoPolicy | None = None
    region: NulFree | None = Field(default=None, min_length=1, max_length=64)
    deadline: datetime | None = None
    co2_budget_kg: float | None = Field(default=None, gt=0)
    gpu_class: NulFree = Field(default="any", min_length=1, max_length=32)
    gpus: int = Field(default=1, strict=True, description="Devices of one worker the job "
                      "trains on (data-parallel).")
    max_length: int | None = Field(default=None, ge=8, le=131072)
    test_file: NulFree | None = Field(default=None, max_length=40)


class FineTuningJobCreate(_Strict):
    model: NulFree = Field(min_length=1, max_length=500)
    training_file: NulFree = Field(min_length=1, max_length=40)
    validation_file: NulFree | None = Field(default=None, max_length=40)
    hyperparameters: OpenAIHyperparameters | None = None
    method: MethodIn | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    suffix: NulFree | None = Field(default=None, min_length=1, max_length=64)
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None
    greentrainer: GreenTrainerOptions | None = None


def _hyperparameters(body: FineTuningJobCreate) -> OpenAIHyperparameters:
    from_method = body.method.supervised.hyperparameters \
        if body.method is not None and body.method.supervised is not None else None
    if from_method is not None and body.hyperparameters is not None:
        raise InvalidInput("give the hyperparameters once: in method.supervised.hyperparameters "
                           "(or the older top-level hyperparameters), not both",
                           field="hyperparameters")
    return from_method or body.hyperparameters or OpenAIHyperparameters()


def resolve_auto(hyper: OpenAIHyperparameters, examples: int) -> dict[str, Any]:
    """The native hyperparameters for ``examples`` training rows, each ``"auto"`` resolved, and
    which ones were (``auto``)."""
    n = max(examples, 1)
    epochs = hyper.n_epochs if hyper.n_epochs != "auto" else \
        min(AUTO_MAX_EPOCHS, max(1, math.ceil(AUTO_EXAMPLES_SEEN / n)))
    batch = hyper.batch_size if hyper.batch_size != "auto" else \
        min(AUTO_MAX_BATCH, max(1, round(AUTO_BATCH_SHARE * n)))
    # OpenAI: 0.05, 0.1 or 0.2 depending on the batch size (larger batches, larger rates).
    multiplier = hyper.learning_rate_multiplier if hyper.learning_rate_multiplier != "auto" else \
        0.05 if batch < 8 else 0.1 if batch < 32 else 0.2
    auto = [name for name in ("n_epochs", "batch_size", "learning_rate_multiplier")
            if getattr(hyper, name) == "auto"]
    return {"epochs": epochs, "batch_size": batch,
            "learning_rate": min(multiplier * BASE_LEARNING_RATE, 1.0), "auto": auto}


def _rho_policy(options: GreenTrainerOptions) -> dict[str, Any] | None:
    """The native rho policy: ``rho_policy`` (default: a fixed rho of DEFAULT_RHO) with
    ``region``, ``deadline`` and ``co2_budget_kg`` set on it (validated with the job)."""
    dumped = options.model_dump(mode="json", exclude_none=True)
    extra = {name: dumped[name] for name in ("region", "deadline", "co2_budget_kg")
             if name in dumped}
    if not extra:
        return dumped.get("rho_policy")
    policy = dumped.get("rho_policy") or {"type": RhoPolicyKind.FIXED.value, "rho": DEFAULT_RHO}
    if "co2_budget_kg" in extra and policy["type"] != RhoPolicyKind.CARBON_AWARE.value:
        raise InvalidInput("greentrainer: co2_budget_kg needs a carbon-aware rho_policy "
                           "(with rho_min, rho_max and region)", field="greentrainer.rho_policy")
    return {**policy, **extra}


# A native field -> the OpenAI request's name for it (in the errors /v1 answers).
OPENAI_FIELDS = {"training_dataset": "training_file", "validation_dataset": "validation_file",
                 "test_dataset": "greentrainer.test_file", "hyperparameters.epochs":
                 "hyperparameters.n_epochs", "method": "greentrainer.method",
                 "rho_policy": "greentrainer.rho_policy", "gpu_class": "greentrainer.gpu_class",
                 "gpus": "greentrainer.gpus"}


def openai_field(field: str | None) -> str | None:
    if field is None:
        return None
    head = next((name for name in OPENAI_FIELDS if field == name or field.startswith(name + ".")),
                None)
    return field if head is None else OPENAI_FIELDS[head] + field[len(head):]


def to_job_create(body: FineTuningJobCreate, examples: int,
                  default_seed: int) -> tuple[JobCreate, list[str]]:
    """The native request, and the names of the hyperparameters resolved from ``"auto"``
    (``default_seed`` when no seed is given). Raises `InvalidInput` naming the field."""
    if body.integrations:
        raise InvalidInput("integrations are not supported", field="integrations")
    options = body.greentrainer or GreenTrainerOptions()
    resolved = resolve_auto(_hyperparameters(body), examples)
    auto = resolved.pop("auto")
    seed = body.seed if body.seed is not None else default_seed
    hyper: dict[str, Any] = {**resolved, "seed": seed}
    if options.max_length is not None:
        hyper["max_length"] = options.max_length
    native: dict[str, Any] = {
        "model": body.model, "training_dataset": body.training_file,
        "validation_dataset": body.validation_file, "test_dataset": options.test_file,
        "method": options.method, "hyperparameters": hyper, "gpu_class": options.gpu_class,
        "gpus": options.gpus, "suffix": body.suffix, "metadata": body.metadata}
    policy = _rho_policy(options)
    if policy is not None:
        native["rho_policy"] = policy
    try:
        return JobCreate.model_validate(native), auto
    except ValidationError as exc:
        first = validation_details(exc.errors())[0]
        field = openai_field(first["field"] or None)
        raise InvalidInput(first["message"].replace(first["field"], field or "", 1)
                           if first["field"] else first["message"], field=field) from None
