"""/teams (admin): teams, quotas and keys. /me: who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from service.auth import create_api_key
from service.deps import Admin, CurrentPrincipal, SessionDep
from service.errors import NotFound
from service.models import Team
from service.quotas import usage_by_team
from service.schemas import (
    ApiKeyOut,
    Me,
    TeamCreate,
    TeamOut,
    TeamUpdate,
    TeamUsageOut,
    TeamWithKey,
)
from service.teams import create_team, get_team, list_teams, revoke_key, update_team

router = APIRouter(tags=["teams"])


@router.get("/me", response_model=Me)
def me(principal: CurrentPrincipal) -> Me:
    return Me(team_id=principal.team_id, is_admin=principal.is_admin)


@router.post("/teams", status_code=status.HTTP_201_CREATED, response_model=TeamWithKey)
def post_team(body: TeamCreate, session: SessionDep, _admin: Admin) -> TeamWithKey:
    """Create a team and its first API key (the key is shown only in this response)."""
    team, row, key = create_team(session, body)
    session.commit()
    return TeamWithKey(**TeamOut.model_validate(team).model_dump(),
                       api_key=ApiKeyOut(id=row.id, team_id=team.id, prefix=row.prefix, key=key))


def _with_usage(session: Session, teams: list[Team]) -> list[TeamOut]:
    usage = usage_by_team(session, [t.id for t in teams])
    return [TeamOut.model_validate(t).model_copy(
        update={"usage": TeamUsageOut.model_validate(usage[t.id])}) for t in teams]


@router.get("/teams", response_model=list[TeamOut])
def get_teams(session: SessionDep, _admin: Admin) -> list[TeamOut]:
    """Every team with its quotas and their current use."""
    return _with_usage(session, list_teams(session))


@router.get("/teams/{team_id}", response_model=TeamOut)
def get_one_team(team_id: str, session: SessionDep, principal: CurrentPrincipal) -> TeamOut:
    """An admin reads any team; a team reads only itself (others are 404)."""
    if not principal.is_admin and principal.team_id != team_id:
        raise NotFound(f"no team with id {team_id!r}", field="team_id")
    return _with_usage(session, [get_team(session, team_id)])[0]


@router.patch("/teams/{team_id}", response_model=TeamOut)
def patch_team(team_id: str, body: TeamUpdate, session: SessionDep, _admin: Admin) -> TeamOut:
    """Change a team's quotas (max concurrent jobs, monthly CO2 budget in kg)."""
    team = update_team(session, team_id, body)
    session.commit()
    return TeamOut.model_validate(team)


@router.post("/teams/{team_id}/keys", status_code=status.HTTP_201_CREATED,
             response_model=ApiKeyOut)
def post_key(team_id: str, session: SessionDep, _admin: Admin) -> ApiKeyOut:
    get_team(session, team_id)
    row, key = create_api_key(session, team_id=team_id)
    session.commit()
    return ApiKeyOut(id=row.id, team_id=team_id, prefix=row.prefix, key=key)


@router.delete("/teams/{team_id}/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_key(team_id: str, key_id: str, session: SessionDep, _admin: Admin) -> Response:
    revoke_key(session, team_id, key_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
