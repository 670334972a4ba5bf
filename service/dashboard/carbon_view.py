"""The job page's "Carbon decisions": what the carbon planner decided for the job and why, read
from the job's events (the planner's decisions are recorded there by the API at submission, the
scheduler loop before the start and the worker at every epoch boundary)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import JobEvent

ROWS_SHOWN = 200  # the latest this many decisions

# Event types that carry a carbon decision or a pause (service.pausing, service.pool.green,
# worker.carbon, service.pool.carbon_plan).
CARBON_EVENTS = ("carbon_plan", "green_window", "epoch_start", "carbon_wait", "pause_requested",
                 "paused",
                 "resumed", "carbon_note", "carbon_fallback", "co2_budget")
SOURCE_NAMES = {"live": "live reading", "provider": "provider forecast",
                "history": "history profile", "static": "static average"}


@dataclass(frozen=True)
class CarbonRow:
    at: datetime
    kind: str
    summary: str
    sources: str  # the forecast hours used, by source ("" when the event has none)
    level: str


def _sources(hours: Mapping[str, Any] | None) -> str:
    if not hours:
        return ""
    return ", ".join(f"{SOURCE_NAMES.get(name, name)} {float(value):g} h"
                     for name, value in hours.items() if isinstance(value, int | float))


def _plan_summary(data: Mapping[str, Any]) -> tuple[str, str]:
    plan = data.get("plan") or {}
    rho = data.get("rho")
    intensity = (data.get("carbon") or {}).get("carbon_intensity_g_per_kwh")
    text = f"epoch {data.get('epoch_index')} at rho {rho:.2f}" if isinstance(rho, float) else ""
    if isinstance(intensity, int | float):
        text += f", {intensity:.0f} g/kWh now"
    if plan.get("reason"):
        text += f": {plan['reason']}"
    return text, _sources(plan.get("forecast_sources_hours"))


def carbon_rows(session: Session, job_id: str) -> list[CarbonRow]:
    """The latest carbon-relevant events of a job, oldest first, summarised for the page."""
    events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id,
                                                    JobEvent.type.in_(CARBON_EVENTS))
                             .order_by(JobEvent.id.desc()).limit(ROWS_SHOWN))
    return summarise(reversed(list(events)))


def summarise(events: Iterable[JobEvent]) -> list[CarbonRow]:
    rows = []
    for event in events:
        data = event.data or {}
        summary, sources = event.message, _sources(data.get("forecast_sources_hours"))
        if event.type == "epoch_start":
            summary, sources = _plan_summary(data)
            summary = summary or event.message
        rows.append(CarbonRow(event.created_at, event.type, summary, sources, event.level))
    return rows
