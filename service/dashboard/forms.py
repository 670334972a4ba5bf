"""The job submission form: turns form fields into the API's `JobCreate` and submits it with the
same domain functions as `POST /datasets` and `POST /jobs`, so a form shows exactly the API's
validation messages (`service.http_errors.validation_details`, `ServiceError.message`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from greentrainer_carbon.rho_policy import RhoPolicyKind
from service.datasets import create_dataset, spool_upload
from service.deps import AppContext
from service.dispatch import notify
from service.errors import ServiceError
from service.http_errors import validation_details
from service.jobs import submit_job
from service.models import Job
from service.schemas import JobCreate

RHO_TYPES = tuple(kind.value for kind in RhoPolicyKind)
HYPERPARAMETERS = ("epochs", "batch_size", "learning_rate", "max_length")


@dataclass
class FormErrors:
    """Messages by field name ('' for the form as a whole), in the API's words."""

    by_field: dict[str, list[str]] = field(default_factory=dict)

    def add(self, field_name: str | None, message: str) -> None:
        self.by_field.setdefault(field_name or "", []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_field)

    @property
    def messages(self) -> list[str]:
        return [m for messages in self.by_field.values() for m in messages]


def _text(form: Mapping[str, Any], name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _number(text: str | None) -> int | float | str | None:
    """A number typed in the form as the JSON number the API expects; anything else is left as
    text for pydantic to name ("Input should be a valid integer")."""
    if text is None or len(text) > 64:  # 64 characters: no epoch count, rate or rho is longer
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _deadline(text: str | None) -> str | None:
    """A browser's datetime-local value (no zone) is read as UTC, as the form says."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text  # pydantic names the problem in the API's words
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def job_payload(form: Mapping[str, Any], training_dataset: str | None) -> dict[str, Any]:
    """The JSON body `POST /jobs` would receive for these form fields (empty fields omitted,
    numbers as JSON numbers, anything else as text for pydantic to name the problem)."""
    rho_type = _text(form, "rho_type") or RhoPolicyKind.FIXED
    policy: dict[str, Any] = {"type": rho_type}
    if rho_type == RhoPolicyKind.FIXED:
        policy["rho"] = _number(_text(form, "rho"))
    elif rho_type == RhoPolicyKind.SCHEDULE:
        policy["rhos"] = [_number(part.strip()) for part in (_text(form, "rhos") or "").split(",")
                          if part.strip()]
    else:
        for name in ("rho_min", "rho_max", "co2_budget_kg"):
            policy[name] = _number(_text(form, name))
        policy["region"] = _text(form, "region")
        policy["deadline"] = _deadline(_text(form, "deadline"))
    if _text(form, "allow_low_rho"):
        policy["allow_low_rho"] = True
    payload: dict[str, Any] = {
        "model": _text(form, "model"), "training_dataset": training_dataset,
        "test_dataset": _text(form, "test_dataset"),
        "method": _text(form, "method") or "greentrainer",
        "hyperparameters": {k: _number(v) for k in HYPERPARAMETERS
                            if (v := _text(form, k)) is not None},
        "rho_policy": {k: v for k, v in policy.items() if v is not None},
    }
    return {k: v for k, v in payload.items() if v is not None}


def _upload(session: Session, context: AppContext, team_id: str, upload: Any,
            errors: FormErrors) -> str | None:
    """Store an uploaded data set as `POST /datasets` would; its id, or None with an error."""
    settings = context.settings
    try:
        with spool_upload(upload.file, settings) as spooled:
            dataset, _ = create_dataset(
                session, context.store, team_id=team_id, upload=spooled,
                filename=upload.filename, declared_format=None, name=None, source_field=None,
                target_field=None, settings=settings)
    except ServiceError as exc:
        errors.add("dataset_file", exc.message)
        return None
    session.commit()
    return dataset.id


def submit_form(session: Session, context: AppContext, team_id: str, form: Mapping[str, Any],
                ) -> tuple[Job | None, FormErrors, str | None]:
    """Upload the data set (if a file was given) and submit the job; returns (job, errors,
    training data set id). A refused job keeps its uploaded data set, offered again by id."""
    errors = FormErrors()
    dataset_id = _text(form, "training_dataset")
    upload = form.get("dataset_file")
    if upload is not None and not isinstance(upload, str) and upload.filename:
        dataset_id = _upload(session, context, team_id, upload, errors)
        if dataset_id is None:
            return None, errors, None
    if dataset_id is None:
        errors.add("training_dataset", "training_dataset: upload a data set file or pick one "
                   "already uploaded")
        return None, errors, None
    try:
        request = JobCreate.model_validate(job_payload(form, dataset_id))
    except ValidationError as exc:
        for detail in validation_details(exc.errors()):
            errors.add(detail["field"], detail["message"])
        return None, errors, dataset_id
    try:
        job, created = submit_job(session, team_id, request, context.settings,
                                  idempotency_key=_text(form, "idempotency_key"),
                                  checks=context.job_checks)
    except ServiceError as exc:
        session.rollback()
        errors.add(exc.field, exc.message)
        return None, errors, dataset_id
    session.commit()
    if created:
        notify(context.dispatcher, "queued", job.id)
    return job, errors, dataset_id
