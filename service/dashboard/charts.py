"""The dashboard's charts, built from `service.stats` results (the API's own figures)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime

from markupsafe import Markup

from service.dashboard.format import unit_for
from service.dashboard.svg import PALETTE, Axis, Band, Series, chart, heatmap
from service.grid import PoolOutlook
from service.models import Job
from service.stats import JobSeries, Overview

_LAYER = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?:\.|$)")
_ANY_INDEX = re.compile(r"\.(\d+)\.")
_EDGE_ORDER = {"embeddings": -2, "norm": 10**6, "lm_head": 10**6 + 1, "other": 10**6 + 2}


def layer_of(tensor_name: str) -> str:
    """The layer a parameter tensor belongs to: 'layer 3' for model.layers.3.mlp.up_proj.weight,
    else 'embeddings', 'lm_head', 'norm' or 'other'."""
    match = _LAYER.search(tensor_name) or _ANY_INDEX.search(tensor_name)
    if match:
        return f"layer {int(match.group(1))}"
    lowered = tensor_name.lower()
    for key, group in (("embed", "embeddings"), ("wte", "embeddings"), ("wpe", "embeddings"),
                       ("lm_head", "lm_head"), ("norm", "norm")):
        if key in lowered:
            return group
    return "other"


def _layer_key(group: str) -> int:
    return int(group.split()[1]) if group.startswith("layer ") else _EDGE_ORDER[group]


def tensor_heatmap(series: JobSeries) -> Markup | None:
    """Layers x epochs: how many of each layer's tensors were trained in each epoch."""
    if not any(p.selected_tensor_names for p in series.epochs):
        return None
    selected: dict[tuple[str, int], int] = defaultdict(int)
    members: dict[str, set[str]] = defaultdict(set)
    for point in series.epochs:
        for name in point.selected_tensor_names:
            group = layer_of(name)
            selected[(group, point.epoch_index)] += 1
            members[group].add(name)
    rows = sorted(members, key=_layer_key)
    columns = [p.epoch_index for p in series.epochs]
    cells = {(row, col): (selected.get((row, col), 0), len(members[row]))
             for row in rows for col in columns}
    return heatmap("chart-tensors", "Tensors trained per layer and epoch", rows, columns, cells,
                   "epoch", "layer")


def _time_axis(span_s: float) -> tuple[float, str]:
    if span_s <= 120:
        return 1.0, "s"
    if span_s <= 7200:
        return 60.0, "min"
    return 3600.0, "h"


def carbon_chart(job: Job, series: JobSeries) -> Markup:
    """Intensity used at each epoch (step line) and rho (second axis) against time since
    submission; the run window from the chosen start shaded."""
    origin = job.created_at
    ends = [p.finished_at for p in series.epochs] or [job.finished_at or job.updated_at]
    span = max((max(ends) - origin).total_seconds(), 1.0)
    divide, unit = _time_axis(span)

    def x(moment: datetime) -> float:
        return (moment - origin).total_seconds() / divide

    with_ci = [p for p in series.epochs if p.carbon_intensity_g_per_kwh is not None]
    lines = [
        Series("carbon intensity (g/kWh)",
               [(x(p.started_at), p.carbon_intensity_g_per_kwh or 0.0) for p in with_ci],
               kind="step", color=PALETTE[4],
               raw=[p.carbon_intensity_g_per_kwh or 0.0 for p in with_ci],
               end_x=x(with_ci[-1].finished_at) if with_ci else None),
        Series("rho", [(x(p.started_at), p.rho) for p in series.epochs], axis="right",
               kind="dots", color=PALETTE[0], raw=[p.rho for p in series.epochs]),
    ]
    if series.reference_source == "submission" and series.reference_g_per_kwh is not None:
        ref = series.reference_g_per_kwh
        lines.append(Series("intensity at submission", [(0.0, ref), (span / divide, ref)],
                            kind="dashed", color=PALETTE[1], raw=[ref, ref]))
    bands = []
    start = job.planned_start_at or job.started_at or (series.epochs[0].started_at
                                                       if series.epochs else None)
    if start is not None:
        bands.append(Band(x(start), x(max(ends)) if series.epochs else x(start),
                          f"run from chosen start ({start.astimezone(UTC):%H:%M} UTC)"))
    return chart("chart-carbon", "Grid carbon intensity and rho over the job's life", lines,
                 Axis(f"time since submission ({unit})"), Axis("carbon intensity (g/kWh)",
                                                               lambda v: f"{v:,.0f}"),
                 Axis("rho (share of full FT FLOPs)", lambda v: f"{v:.2f}"), bands,
                 x_range=(0.0, span / divide))


def flops_chart(series: JobSeries) -> Markup:
    epochs = series.epochs
    divide, unit = unit_for("flops", [p.full_ft_flops for p in epochs])
    return chart("chart-flops", "FLOPs per epoch: executed vs full fine-tuning", [
        Series("executed", [(p.epoch_index, p.executed_flops / divide) for p in epochs],
               kind="bar", color=PALETTE[0], raw=[p.executed_flops for p in epochs]),
        Series("full fine-tuning", [(p.epoch_index, p.full_ft_flops / divide) for p in epochs],
               kind="bar", color=PALETTE[1], raw=[p.full_ft_flops for p in epochs]),
    ], Axis("epoch", lambda v: f"{v:.0f}", integer=True), Axis(unit, lambda v: f"{v:g}"))


def energy_chart(series: JobSeries) -> Markup:
    epochs = [p for p in series.epochs if p.energy_kwh is not None]
    e_div, e_unit = unit_for("kwh", [p.energy_kwh for p in epochs])
    c_div, c_unit = unit_for("kg_co2", [p.kg_co2 for p in epochs])
    with_co2 = [p for p in epochs if p.kg_co2 is not None]
    return chart("chart-energy", "Energy and CO2 per epoch", [
        Series(f"energy ({e_unit})", [(p.epoch_index, (p.energy_kwh or 0) / e_div)
                                       for p in epochs],
               kind="bar", color=PALETTE[3], raw=[p.energy_kwh or 0.0 for p in epochs]),
        Series(f"CO2 ({c_unit})", [(p.epoch_index, (p.kg_co2 or 0) / c_div) for p in with_co2],
               axis="right", color=PALETTE[2], raw=[p.kg_co2 or 0.0 for p in with_co2]),
    ], Axis("epoch", lambda v: f"{v:.0f}", integer=True), Axis(f"energy ({e_unit})"),
        Axis(f"CO2 ({c_unit})"))


def loss_chart(series: JobSeries) -> Markup | None:
    """Training loss per epoch, and the validation loss beside it when the job has one."""
    epochs = [p for p in series.epochs if p.loss is not None]
    if not epochs:
        return None
    validated = [p for p in series.epochs if p.validation_loss is not None]
    lines = [Series("loss", [(p.epoch_index, p.loss or 0.0) for p in epochs],
                    color=PALETTE[5], raw=[p.loss or 0.0 for p in epochs])]
    if validated:
        lines.append(Series("validation loss",
                            [(p.epoch_index, p.validation_loss or 0.0) for p in validated],
                            kind="dashed", color=PALETTE[1],
                            raw=[p.validation_loss or 0.0 for p in validated]))
    title = "Training and validation loss per epoch" if validated else "Training loss per epoch"
    return chart("chart-loss", title, lines, Axis("epoch", lambda v: f"{v:.0f}", integer=True),
                 Axis("loss (cross-entropy)", zero=False))


def _bucket_axis(overview: Overview) -> Axis:
    pattern = "%m-%d %H:00" if overview.bucket == "hour" else "%Y-%m-%d"
    return Axis(f"time (UTC, per {overview.bucket})",
                lambda v: datetime.fromtimestamp(v, UTC).strftime(pattern))


def overview_charts(overview: Overview) -> list[Markup]:
    """FLOPs executed vs full FT, and CO2 emitted / saved with energy, per time bucket."""
    if not overview.series:
        return []
    buckets = overview.series
    xs = [b.start.timestamp() for b in buckets]
    f_div, f_unit = unit_for("flops", [b.full_ft_flops for b in buckets])
    c_div, c_unit = unit_for("kg_co2", [max(b.kg_co2, b.saved_kg) for b in buckets])
    e_div, e_unit = unit_for("kwh", [b.energy_kwh for b in buckets])
    flops = chart("chart-overview-flops", "FLOPs executed vs the full fine-tuning counterfactual",
                  [Series("executed", list(zip(xs, [b.executed_flops / f_div for b in buckets])),
                          kind="bar", raw=[b.executed_flops for b in buckets]),
                   Series("full fine-tuning",
                          list(zip(xs, [b.full_ft_flops / f_div for b in buckets])),
                          kind="bar", color=PALETTE[1], raw=[b.full_ft_flops for b in buckets])],
                  _bucket_axis(overview), Axis(f_unit), x_range=_padded(xs, overview.bucket),
                  bar_step=_width(overview.bucket), x_ticks=_ticks(xs))
    co2 = chart("chart-overview-co2", "CO2 emitted and saved, energy",
                [Series("emitted", list(zip(xs, [b.kg_co2 / c_div for b in buckets])),
                        kind="bar", color=PALETTE[4], raw=[b.kg_co2 for b in buckets]),
                 Series("saved: fewer FLOPs",
                        list(zip(xs, [b.saved_by_fewer_flops_kg / c_div for b in buckets])),
                        kind="bar", color=PALETTE[0],
                        raw=[b.saved_by_fewer_flops_kg for b in buckets]),
                 Series("saved: cleaner times",
                        list(zip(xs, [b.saved_by_cleaner_time_kg / c_div for b in buckets])),
                        kind="bar", color=PALETTE[3],
                        raw=[b.saved_by_cleaner_time_kg for b in buckets]),
                 Series(f"energy ({e_unit})",
                        list(zip(xs, [b.energy_kwh / e_div for b in buckets])), axis="right",
                        color=PALETTE[2], raw=[b.energy_kwh for b in buckets])],
                _bucket_axis(overview), Axis(c_unit), Axis(f"energy ({e_unit})"),
                x_range=_padded(xs, overview.bucket), bar_step=_width(overview.bucket),
                x_ticks=_ticks(xs))
    return [flops, co2]


def _ticks(xs: list[float], most: int = 8) -> list[float]:
    """Bucket starts as x ticks, thinned to at most ``most`` labels."""
    every = max(1, -(-len(xs) // most))
    return xs[::every]


def _width(bucket: str) -> float:
    return 3600.0 if bucket == "hour" else 86400.0


def _padded(xs: list[float], bucket: str) -> tuple[float, float]:
    return min(xs) - _width(bucket), max(xs) + _width(bucket)


def forecast_chart(carbon: PoolOutlook) -> Markup | None:
    """The pool region's intensity forecast against hours from now."""
    if not carbon.forecast:
        return None
    origin = carbon.forecast[0].timestamp
    points = [((p.timestamp - origin).total_seconds() / 3600, p.carbon_intensity_g_per_kwh)
              for p in carbon.forecast]
    label = "forecast" + (" (offline: static average)" if carbon.offline_fallback else "")
    return chart("chart-forecast", f"Carbon intensity forecast, {carbon.region}", [
        Series(f"{label} (g/kWh)", points, color=PALETTE[4],
               raw=[p.carbon_intensity_g_per_kwh for p in carbon.forecast]),
    ], Axis("hours from now (h)"), Axis("carbon intensity (g/kWh)", lambda v: f"{v:,.0f}"))
