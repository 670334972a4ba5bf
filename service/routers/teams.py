"""/teams (admin): teams, quotas and keys. /me: who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service.auth import create_api_key
from service.deps import Admin, CurrentPrincipal, SessionDep
from service.errors import NotFound
from service.schemas import ApiKeyOut, Me, TeamCreate, TeamOut, TeamUpdate, TeamWithKey
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


@router.get("/teams", response_model=list[TeamOut])
def get_teams(session: SessionDep, _admin: Admin) -> list[TeamOut]:
    return [TeamOut.model_validate(t) for t in list_teams(session)]


@router.get("/teams/{team_id}", response_model=TeamOut)
def get_one_team(team_id: str, session: SessionDep, principal: CurrentPrincipal) -> TeamOut:
    """An admin reads any team; a team reads only itself (others are 404)."""
    if not principal.is_admin and principal.team_id != team_id:
        raise NotFound(f"no team with id {team_id!r}", field="team_id")
    return TeamOut.model_validate(get_team(session, team_id))


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
