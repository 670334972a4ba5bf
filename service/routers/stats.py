"""/stats/overview and /jobs/{id}/series: the figures the dashboard draws, for API clients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from service.auth import owned
from service.deps import CurrentPrincipal, OwnedJob, SessionDep
from service.grid import PoolOutlook, app_outlook
from service.models import Team
from service.stats import JobSeries, Overview, job_series, overview

router = APIRouter(tags=["stats"])


@router.get("/stats/overview", response_model=Overview)
def get_overview(session: SessionDep, principal: CurrentPrincipal,
                 team_id: Annotated[str | None, Query(description="Admin only: one team.")]
                 = None) -> Overview:
    """FLOPs executed vs full fine-tuning, energy, CO2 emitted and saved (by fewer FLOPs, by
    cleaner times): totals and a time series for the caller's team, or every team (admin)."""
    if principal.is_admin and team_id:
        owned(session, Team, team_id, principal)
        return overview(session, team_id)
    return overview(session, None if principal.is_admin else principal.require_team())


@router.get("/jobs/{job_id}/series", response_model=JobSeries)
def get_series(job: OwnedJob, session: SessionDep) -> JobSeries:
    """Per-epoch figures of a job with its CO2 savings (the job page's charts)."""
    return job_series(session, job)


@router.get("/stats/carbon", response_model=PoolOutlook)
def get_carbon(request: Request, _principal: CurrentPrincipal) -> PoolOutlook:
    """The grid's intensity now and its forecast for the pool's region (GREENTRAINER_POOL_REGION);
    `offline_fallback` is true when the answer is a static average or a recorded trace."""
    return app_outlook(request.app.state, request.app.state.context.settings.carbon)
