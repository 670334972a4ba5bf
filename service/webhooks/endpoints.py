"""A team's webhook endpoints: create (with a fresh signing secret), list, delete, and the
deliveries made to one."""

from __future__ import annotations

import base64
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import InvalidInput
from service.models import new_id, utcnow
from service.webhooks.models import WebhookDelivery, WebhookEndpoint
from service.webhooks.schemas import WebhookCreate
from service.webhooks.targets import check_target

MAX_ENDPOINTS_PER_TEAM = 20


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create_endpoint(session: Session, team_id: str, request: WebhookCreate, *,
                    allow_private: bool) -> WebhookEndpoint:
    """Register an endpoint. Raises `InvalidInput` naming ``url`` for a refused target, or
    when the team has MAX_ENDPOINTS_PER_TEAM already."""
    check_target(request.url, allow_private=allow_private)
    count = len(list(session.scalars(select(WebhookEndpoint.id).where(
        WebhookEndpoint.team_id == team_id))))
    if count >= MAX_ENDPOINTS_PER_TEAM:
        raise InvalidInput(f"a team may register at most {MAX_ENDPOINTS_PER_TEAM} webhook "
                           "endpoints; delete one first", field="url")
    endpoint = WebhookEndpoint(id=new_id("whe"), team_id=team_id, url=request.url,
                               description=request.description,
                               event_types=sorted(set(request.event_types)),
                               secret=new_secret(), enabled=True, created_at=utcnow())
    session.add(endpoint)
    session.flush()
    return endpoint


def list_endpoints(session: Session, team_id: str | None) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
    if team_id is not None:
        query = query.where(WebhookEndpoint.team_id == team_id)
    return list(session.scalars(query))


def list_deliveries(session: Session, endpoint: WebhookEndpoint, *, after: str | None,
                    limit: int) -> tuple[list[WebhookDelivery], bool]:
    """Newest first, cursor-paginated like the other lists."""
    query = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
             .order_by(WebhookDelivery.id.desc()).limit(limit + 1))
    if after is not None:
        query = query.where(WebhookDelivery.id < after)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit
