"""/webhooks: a team's endpoints (create, list, read, delete) and the deliveries to each."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from service.auth import owned
from service.deps import Context, CurrentPrincipal, SessionDep, TeamId
from service.schemas import Page
from service.webhooks.endpoints import create_endpoint, list_deliveries, list_endpoints
from service.webhooks.models import WebhookEndpoint
from service.webhooks.schemas import DeliveryOut, WebhookCreate, WebhookOut, WebhookWithSecret

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookWithSecret)
def create_webhook(request: WebhookCreate, context: Context, session: SessionDep,
                   team_id: TeamId) -> WebhookWithSecret:
    """Register an endpoint for the caller's team. The answer holds the signing secret (only
    this once). URLs on private or loopback addresses are a 422 naming ``url`` unless the
    deployment allows them."""
    endpoint = create_endpoint(session, team_id, request,
                               allow_private=context.settings.webhooks.allow_private_targets)
    session.commit()
    return WebhookWithSecret.model_validate(endpoint)


@router.get("", response_model=list[WebhookOut])
def get_webhooks(session: SessionDep, principal: CurrentPrincipal) -> list[WebhookOut]:
    rows = list_endpoints(session, None if principal.is_admin else principal.team_id)
    return [WebhookOut.model_validate(row) for row in rows]


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(webhook_id: str, session: SessionDep, principal: CurrentPrincipal) -> WebhookOut:
    return WebhookOut.model_validate(owned(session, WebhookEndpoint, webhook_id, principal))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: str, session: SessionDep,
                   principal: CurrentPrincipal) -> Response:
    """Remove the endpoint and its delivery log; nothing more is sent to it."""
    session.delete(owned(session, WebhookEndpoint, webhook_id, principal))
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryOut])
def get_deliveries(webhook_id: str, session: SessionDep, principal: CurrentPrincipal,
                   limit: Annotated[int, Query(ge=1, le=100)] = 20,
                   after: str | None = None) -> Page[DeliveryOut]:
    """Every delivery to the endpoint, newest first, with the log of its tries."""
    endpoint = owned(session, WebhookEndpoint, webhook_id, principal)
    rows, has_more = list_deliveries(session, endpoint, after=after, limit=limit)
    return Page[DeliveryOut](data=[DeliveryOut.model_validate(r) for r in rows],
                             has_more=has_more, last_id=rows[-1].id if rows else None)
