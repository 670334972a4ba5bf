"""The grid's carbon intensity now and its forecast for the GPU pool's region, through the
scheduler's provider chain (the same providers and cache the rho policy uses). Offline the
chain ends at CodeCarbon's static country average (or a recorded trace): such an answer is
marked ``offline_fallback`` so that a page never passes a yearly average off as live data.
`GET /stats/carbon` and the dashboard's overview both call `pool_outlook`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import State

from service.scheduler import AllProvidersFailed, ProviderError, SchedulerSettings, build_chain
from service.scheduler.providers import ProviderChain

OFFLINE_SOURCES = ("codecarbon-static", "trace")


class GridSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GREENTRAINER_", extra="ignore")

    pool_region: str = Field(default="GB", min_length=1, max_length=64,
                             description="Grid region of the GPU pool (shown with its intensity; "
                             "the providers' own region settings choose the data).")
    pool_forecast_hours: float = Field(default=24.0, gt=0, le=72,
                                       description="Hours of forecast shown.")


class IntensityPoint(BaseModel):
    timestamp: datetime
    carbon_intensity_g_per_kwh: float


class PoolOutlook(BaseModel):
    region: str
    source: str | None = Field(description="Provider that answered (e.g. codecarbon-static:GBR).")
    signal: str | None = Field(description="average or marginal.")
    offline_fallback: bool = Field(description="A static average or recorded trace, not live.")
    current: IntensityPoint | None
    forecast: list[IntensityPoint]
    forecast_source: str | None
    notes: list[str] = Field(description="Fallbacks taken and failures, in words.")


def _offline(source: str | None) -> bool:
    return source is None or source.startswith(OFFLINE_SOURCES)


def pool_outlook(chain: ProviderChain, settings: GridSettings) -> PoolOutlook:
    """Current intensity and forecast; a failing provider becomes a note, never an exception."""
    notes: list[str] = []
    current = forecast = None
    try:
        latest = chain.latest()
        current = latest.value
        if latest.event is not None:
            notes.append(latest.event.message)
    except (AllProvidersFailed, ProviderError) as exc:
        notes.append(f"current intensity unavailable: {exc}")
    try:
        ahead = chain.forecast(settings.pool_forecast_hours)
        forecast = ahead
        if ahead.event is not None and ahead.event.message not in notes:
            notes.append(ahead.event.message)
    except (AllProvidersFailed, ProviderError) as exc:
        notes.append(f"forecast unavailable: {exc}")
    source = current.source if current else None
    return PoolOutlook(
        region=settings.pool_region, source=source,
        signal=current.signal if current else None,
        offline_fallback=_offline(source),
        current=IntensityPoint(timestamp=current.timestamp,
                               carbon_intensity_g_per_kwh=current.carbon_intensity_g_per_kwh)
        if current else None,
        forecast=[IntensityPoint(timestamp=r.timestamp,
                                 carbon_intensity_g_per_kwh=r.carbon_intensity_g_per_kwh)
                  for r in (forecast.value if forecast else [])],
        forecast_source=forecast.used if forecast else None, notes=notes)


def app_outlook(state: State, settings: GridSettings | None = None) -> PoolOutlook:
    """`pool_outlook` with the app's provider chain (built once from the GREENTRAINER_*
    scheduler settings and kept on ``app.state`` so that its TTL cache spares the public APIs).
    Misconfigured providers (e.g. a token missing) fall back to the static average, noted."""
    settings = settings or GridSettings()
    chain: ProviderChain | None = getattr(state, "grid_chain", None)
    problem: str | None = getattr(state, "grid_chain_problem", None)
    if chain is None:
        try:
            chain = build_chain()
        except ValueError as exc:
            problem = f"carbon providers misconfigured ({exc}); showing the static average"
            chain = build_chain(SchedulerSettings(carbon_providers="static"))
        state.grid_chain, state.grid_chain_problem = chain, problem
    outlook = pool_outlook(chain, settings)
    if problem:
        outlook.notes.insert(0, problem)
    return outlook
