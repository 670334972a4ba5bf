"""Request and response bodies of /webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from service.text import NulFree
from service.webhooks.models import URL_MAX_LENGTH

EventType = Literal["job.succeeded", "job.failed", "job.cancelled", "job.paused"]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)  # every event a webhook may get


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: NulFree = Field(min_length=1, max_length=URL_MAX_LENGTH,
                         description="http(s) URL the events are POSTed to.")
    description: NulFree | None = Field(default=None, max_length=500)
    event_types: list[EventType] = Field(
        default_factory=lambda: list(EVENT_TYPES),
        min_length=1, max_length=4, description="Events to send; default: all of them.")


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    team_id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    created_at: datetime


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="The Standard Webhooks signing secret (whsec_...): verify "
                                    "each delivery with it. Shown only when the endpoint is "
                                    "created.")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str = Field(description="The message id (webhook-id header), the same on every try.")
    endpoint_id: str
    job_id: str | None
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[dict[str, Any]] = Field(description="Every try: at, status_code, error, "
                                                          "duration_ms.")
    payload: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
