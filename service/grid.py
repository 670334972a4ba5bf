"""The grid's carbon intensity now and its forecast for the GPU pool's region, through the
scheduler's provider chain (the same providers and cache the rho policy uses). Offline the
chain ends at CodeCarbon's static country average (or a recorded trace): such an answer is
marked ``offline_fallback`` so that a page never passes a yearly average off as live data.
`GET /stats/carbon` and the dashboard's overview both call `pool_outlook`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from starlette.datastructures import State

from greentrainer_carbon import AllProvidersFailed, CarbonSettings, ProviderError, build_chain
from greentrainer_carbon.providers import ProviderChain

OFFLINE_SOURCES = ("codecarbon-static", "trace")


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


def pool_outlook(chain: ProviderChain, settings: CarbonSettings) -> PoolOutlook:
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


def app_outlook(state: State, settings: CarbonSettings) -> PoolOutlook:
    """`pool_outlook` with the app's provider chain (built once from the deployment's carbon
    settings and kept on ``app.state`` so that its TTL cache spares the public APIs).
    Misconfigured providers (e.g. a token missing) fall back to the static average, noted."""
    chain: ProviderChain | None = getattr(state, "grid_chain", None)
    problem: str | None = getattr(state, "grid_chain_problem", None)
    if chain is None:
        try:
            chain = build_chain(settings)
        except ValueError as exc:
            problem = f"carbon providers misconfigured ({exc}); showing the static average"
            chain = build_chain(settings.model_copy(update={"providers": "static"}))
        state.grid_chain, state.grid_chain_problem = chain, problem
    outlook = pool_outlook(chain, settings)
    if problem:
        outlook.notes.insert(0, problem)
    return outlook
