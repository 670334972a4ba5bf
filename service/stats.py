"""The numbers of the overview and of a job's charts, read from the epoch rows. The API
(`GET /stats/overview`, `GET /jobs/{id}/series`) and the dashboard both call these two functions,
so a figure on a page is always the figure the API returns. Savings: `service.savings`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Job, JobEpoch, JobEvent, Team
from service.savings import (
    SUBMISSION_EVENT,
    Savings,
    epoch_savings,
    reference_intensity,
)
from service.schemas import EpochFields

# The static provider's source names (greentrainer_carbon.providers.static): an average, no reading.
STATIC_SOURCE = "codecarbon-static"
# Buckets of the overview's time series: hourly while the data spans at most this long.
HOURLY_SPAN = timedelta(hours=48)


class Totals(BaseModel):
    """Sums over epochs (kg, kWh, FLOPs); `saved_*` follow `service.savings`."""

    jobs: int = 0
    epochs: int = 0
    executed_flops: float = 0.0
    full_ft_flops: float = 0.0
    energy_kwh: float = 0.0
    full_ft_energy_kwh: float = 0.0
    kg_co2: float = 0.0
    counterfactual_kg_co2: float = 0.0
    saved_by_fewer_flops_kg: float = 0.0
    saved_by_cleaner_time_kg: float = 0.0
    saved_kg: float = 0.0
    energy_is_estimate: bool = Field(default=False, description="Some energy was estimated.")
    intensity_is_estimate: bool = Field(
        default=False, description="Some epoch's carbon intensity is a static country average "
        "(no live provider answered), not a reading of the grid.")
    savings_are_estimates: bool = Field(
        default=False, description="Always true once a saving is counted: full fine-tuning "
        "started at submission (the counterfactual) never ran, so its energy is estimated from "
        "the measured epochs (service.savings).")


class Bucket(Totals):
    start: datetime


class TeamTotals(Totals):
    team_id: str
    team_name: str


class Overview(BaseModel):
    totals: Totals
    bucket: str = Field(description="hour or day: the width of each series bucket (UTC).")
    series: list[Bucket]
    teams: list[TeamTotals] = Field(description="Per team (admin only; empty for a team).")


class EpochPoint(EpochFields):
    started_at: datetime = Field(description="finished_at - wall_seconds.")
    finished_at: datetime
    counterfactual_kg_co2: float
    saved_by_fewer_flops_kg: float
    saved_by_cleaner_time_kg: float


class JobSeries(BaseModel):
    job_id: str
    reference_g_per_kwh: float | None = Field(description="c_ref of service.savings.")
    reference_source: str | None = Field(description="submission, first epoch, or null.")
    epochs: list[EpochPoint]
    totals: Totals
    energy_models: list[str] = Field(default_factory=list, description="The energy models the "
                                     "carbon plan of each epoch used, as its decisions recorded "
                                     "them (\"assumed\" or \"fitted from N epochs ...\"), "
                                     "distinct, in order.")


def _submitted_intensities(session: Session, job_ids: Sequence[str]) -> dict[str, float]:
    """job id -> intensity recorded at submission (the latest such event wins)."""
    found: dict[str, float] = {}
    if not job_ids:
        return found
    rows = session.execute(select(JobEvent.job_id, JobEvent.data)
                           .where(JobEvent.job_id.in_(job_ids), JobEvent.type == SUBMISSION_EVENT)
                           .order_by(JobEvent.id))
    for job_id, data in rows:
        value = (data or {}).get("carbon_intensity_g_per_kwh")
        if isinstance(value, int | float):
            found[job_id] = float(value)
    return found


def _add(totals: Totals, row: JobEpoch, saving: Savings) -> None:
    totals.epochs += 1
    totals.executed_flops += row.executed_flops
    totals.full_ft_flops += row.full_ft_flops
    totals.energy_kwh += row.energy_kwh or 0.0
    totals.full_ft_energy_kwh += saving.full_ft_energy_kwh
    totals.kg_co2 += saving.emitted_kg
    totals.counterfactual_kg_co2 += saving.counterfactual_ref_kg
    totals.saved_by_fewer_flops_kg += saving.saved_by_fewer_flops_kg
    totals.saved_by_cleaner_time_kg += saving.saved_by_cleaner_time_kg
    totals.saved_kg += saving.saved_kg
    totals.energy_is_estimate |= bool(row.energy_is_estimate and row.energy_kwh is not None)
    totals.intensity_is_estimate |= (row.carbon_intensity_source or "").startswith(STATIC_SOURCE)
    totals.savings_are_estimates |= saving.counterfactual_ref_kg > 0


def estimate_notes(series: JobSeries) -> list[str]:
    """What of a job's CO2 figures is estimated rather than measured, in words (the job page)."""
    totals, notes = series.totals, []
    if totals.savings_are_estimates:
        notes.append("the savings compare against full fine-tuning started at submission, which "
                     "never ran: its energy is scaled from the measured epochs by FLOPs")
    if totals.energy_is_estimate:
        notes.append("energy: CodeCarbon estimated part of it from the hardware's rated power")
    if totals.intensity_is_estimate:
        notes.append("carbon intensity: some epochs used the static country average (no live "
                     "provider answered)")
    for model in series.energy_models:
        if model == "assumed":
            notes.append("the carbon plan's energy model (when to pause, a CO2 budget's rho) "
                         "used the assumed powers: too few epochs are measured on this GPU "
                         "class to fit them")
        else:
            notes.append(f"the carbon plan's energy model was {model}")
    if series.reference_source == "first epoch":
        notes.append("the intensity at submission was not recorded: the first epoch's stands in")
    return notes


def _epochs_with_savings(session: Session, rows: Iterable[JobEpoch]
                         ) -> tuple[list[tuple[JobEpoch, Savings]], dict[str, float | None]]:
    by_job: dict[str, list[JobEpoch]] = defaultdict(list)
    for row in rows:
        by_job[row.job_id].append(row)
    submitted = _submitted_intensities(session, list(by_job))
    refs = {job_id: reference_intensity(submitted.get(job_id), epochs)
            for job_id, epochs in by_job.items()}
    out = [(row, epoch_savings(row, refs[job_id]))
           for job_id, epochs in by_job.items() for row in epochs]
    return out, refs


def job_series(session: Session, job: Job) -> JobSeries:
    """Every epoch of ``job`` in order, with its savings, and the job's totals."""
    rows = list(session.scalars(select(JobEpoch).where(JobEpoch.job_id == job.id)
                                .order_by(JobEpoch.epoch_index)))
    pairs, refs = _epochs_with_savings(session, rows)
    submitted = _submitted_intensities(session, [job.id])
    source = "submission" if job.id in submitted else ("first epoch" if refs.get(job.id)
                                                       is not None else None)
    totals = Totals(jobs=1)
    points = []
    for row, saving in sorted(pairs, key=lambda pair: pair[0].epoch_index):
        _add(totals, row, saving)
        points.append(EpochPoint(
            **EpochFields.model_validate(row).model_dump(),
            finished_at=row.created_at,
            started_at=row.created_at - timedelta(seconds=row.wall_seconds),
            counterfactual_kg_co2=saving.counterfactual_ref_kg,
            saved_by_fewer_flops_kg=saving.saved_by_fewer_flops_kg,
            saved_by_cleaner_time_kg=saving.saved_by_cleaner_time_kg))
    return JobSeries(job_id=job.id, reference_g_per_kwh=refs.get(job.id),
                     reference_source=source, epochs=points, totals=totals,
                     energy_models=_energy_models(session, job.id))


def _energy_models(session: Session, job_id: str) -> list[str]:
    """The energy models the job's epoch decisions recorded (`Decision.to_dict`), distinct."""
    found: list[str] = []
    for data in session.scalars(select(JobEvent.data).where(
            JobEvent.job_id == job_id, JobEvent.type == "epoch_start").order_by(JobEvent.id)):
        model = ((data or {}).get("plan") or {}).get("energy_model") or {}
        source = model.get("source")
        if isinstance(source, str) and source not in found:
            found.append(source)
    return found


def _bucket_start(moment: datetime, width: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if width == "day" else moment


def overview(session: Session, team_id: str | None) -> Overview:
    """Totals, a time series (hourly or daily buckets of epoch end times, UTC) and, when
    ``team_id`` is None (an admin), one row per team. Jobs without epochs count in ``jobs``."""
    scope = select(Job.id, Job.team_id)
    if team_id is not None:
        scope = scope.where(Job.team_id == team_id)
    job_team = {job_id: team for job_id, team in session.execute(scope)}
    epoch_query = select(JobEpoch).order_by(JobEpoch.created_at, JobEpoch.id)
    if team_id is not None:
        epoch_query = epoch_query.join(Job, Job.id == JobEpoch.job_id).where(
            Job.team_id == team_id)
    pairs, _ = _epochs_with_savings(session, session.scalars(epoch_query))
    pairs.sort(key=lambda pair: (pair[0].created_at, pair[0].id))
    width = "hour"
    if pairs and pairs[-1][0].created_at - pairs[0][0].created_at > HOURLY_SPAN:
        width = "day"
    totals = Totals(jobs=len(job_team))
    buckets: dict[datetime, Bucket] = {}
    per_team: dict[str, Totals] = defaultdict(Totals)
    bucket_jobs: dict[datetime, set[str]] = defaultdict(set)
    for row, saving in pairs:
        _add(totals, row, saving)
        start = _bucket_start(row.created_at, width)
        _add(buckets.setdefault(start, Bucket(start=start)), row, saving)
        bucket_jobs[start].add(row.job_id)
        _add(per_team[job_team.get(row.job_id, "")], row, saving)
    teams: list[TeamTotals] = []
    if team_id is None:
        for team_id_, team in session.execute(select(Team.id, Team.name).order_by(Team.name)):
            figures = per_team.get(team_id_, Totals())
            figures.jobs = sum(1 for t in job_team.values() if t == team_id_)
            teams.append(TeamTotals(team_id=team_id_, team_name=team,
                                    **figures.model_dump(exclude={"jobs"}), jobs=figures.jobs))
    for start, bucket in buckets.items():
        bucket.jobs = len(bucket_jobs[start])  # jobs with an epoch ending in this bucket
    return Overview(totals=totals, bucket=width, series=list(buckets.values()), teams=teams)
