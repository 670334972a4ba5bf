"""Team administration: create teams with their first key, change quotas, issue and revoke keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth import create_api_key
from service.errors import Conflict, NotFound
from service.models import ApiKey, Team, new_id, utcnow
from service.schemas import TeamCreate, TeamUpdate


def create_team(session: Session, request: TeamCreate) -> tuple[Team, ApiKey, str]:
    """A new team and its first API key; returns (team, key row, plain key)."""
    team = Team(id=new_id("team"), name=request.name,
                max_concurrent_jobs=request.max_concurrent_jobs,
                monthly_co2_budget_kg=request.monthly_co2_budget_kg, created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(team)
    except IntegrityError:
        raise Conflict(f"a team named {request.name!r} already exists", field="name") from None
    row, key = create_api_key(session, team_id=team.id)
    return team, row, key


def get_team(session: Session, team_id: str) -> Team:
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(f"no team with id {team_id!r}", field="team_id")
    return team


def update_team(session: Session, team_id: str, request: TeamUpdate) -> Team:
    team = get_team(session, team_id)
    for name, value in request.model_dump(exclude_unset=True).items():
        setattr(team, name, value)
    return team


def list_teams(session: Session) -> list[Team]:
    return list(session.scalars(select(Team).order_by(Team.name)))


def revoke_key(session: Session, team_id: str, key_id: str) -> None:
    key = session.get(ApiKey, key_id)
    if key is None or key.team_id != team_id:
        raise NotFound(f"no key with id {key_id!r} in team {team_id!r}", field="key_id")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
