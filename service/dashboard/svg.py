"""Inline SVG charts drawn on the server: no JavaScript chart library, no CDN.

Every drawn point carries its data: ``data-series``, ``data-x`` and ``data-raw`` (the value
exactly as stored, before any unit scaling), so tests and screen readers read the numbers the
chart was drawn from. Charts have axes with ticks, axis titles with units, and a legend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from markupsafe import Markup, escape

PALETTE = ("#1b7f4c", "#8a8f98", "#d9822b", "#3465a4", "#b03a2e", "#7b4fa0")
WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 78, 78, 50, 52


@dataclass(frozen=True)
class Series:
    """A line, step line, dashed line or bar series. ``points`` are (x, y) in display units;
    ``raw`` (same length) are the stored values written to ``data-raw``."""

    name: str
    points: Sequence[tuple[float, float]]
    axis: Literal["left", "right"] = "left"
    kind: Literal["line", "step", "dashed", "bar", "dots"] = "line"
    color: str = PALETTE[0]
    raw: Sequence[float] | None = None
    end_x: float | None = None  # a step line holds its last value until here


@dataclass(frozen=True)
class Band:
    """A shaded span of x (e.g. the chosen start window), labelled in the legend."""

    x0: float
    x1: float
    label: str
    color: str = "#1b7f4c"


@dataclass(frozen=True)
class Axis:
    title: str
    fmt: Callable[[float], str] = field(default=lambda v: f"{v:g}")
    integer: bool = False
    zero: bool = True


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """About ``count`` round tick values covering [low, high] (1, 2, 2.5, 5 x 10^n steps)."""
    if high <= low:
        high = low + (1.0 if low == 0 else abs(low) * 0.1)
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, round(step))
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _attr(value: object) -> str:
    return str(escape(str(value)))


def _range(values: list[float], axis: Axis) -> tuple[float, float, list[float]]:
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if axis.zero:
        low, high = min(low, 0.0), max(high, 0.0)
    ticks = nice_ticks(low, high, integer=axis.integer)
    return ticks[0], ticks[-1], ticks


def chart(chart_id: str, title: str, series: Sequence[Series], x_axis: Axis, y_axis: Axis,
          y2_axis: Axis | None = None, bands: Sequence[Band] = (),
          x_range: tuple[float, float] | None = None, bar_step: float = 1.0,
          x_ticks: Sequence[float] | None = None) -> Markup:
    """An SVG chart with one or two y axes; bars of one x share ``bar_step`` x units.
    Returns markup safe to embed in a template."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    xs = [x for s in series for x, _ in s.points] + [v for b in bands for v in (b.x0, b.x1)]
    bars = [s for s in series if s.kind == "bar"]
    x_lo, x_hi = x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
    if bars and x_range is None:  # room for the outer bars
        x_lo, x_hi = x_lo - bar_step / 2, x_hi + bar_step / 2
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    left_lo, left_hi, left_ticks = _range(
        [y for s in series if s.axis == "left" for _, y in s.points], y_axis)
    right_lo, right_hi, right_ticks = _range(
        [y for s in series if s.axis == "right" for _, y in s.points], y2_axis or y_axis)

    def sx(x: float) -> float:
        return LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float, axis: str) -> float:
        lo, hi = (left_lo, left_hi) if axis == "left" else (right_lo, right_hi)
        return TOP + plot_h - (y - lo) / ((hi - lo) or 1.0) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="{_attr(chart_id)}" class="chart" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{_attr(title)}">',
           f'<text x="{LEFT}" y="18" class="chart-title">{escape(title)}</text>']
    for band in bands:
        x0, x1 = sx(band.x0), sx(band.x1)
        out.append(f'<rect class="band" data-label="{_attr(band.label)}" x="{x0:.1f}" '
                   f'y="{TOP}" width="{max(x1 - x0, 2):.1f}" height="{plot_h}" '
                   f'fill="{band.color}" fill-opacity="0.12"/>')
    for tick in left_ticks:
        y = sy(tick, "left")
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{escape(y_axis.fmt(tick))}</text>')
    if y2_axis is not None:
        for tick in right_ticks:
            y = sy(tick, "right")
            out.append(f'<text class="tick" x="{LEFT + plot_w + 6}" y="{y + 4:.1f}">'
                       f'{escape(y2_axis.fmt(tick))}</text>')
    for tick in x_ticks or nice_ticks(x_lo, x_hi, count=6, integer=x_axis.integer):
        if x_lo <= tick <= x_hi:
            x = sx(tick)
            out.append(f'<line class="axis-tick" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + plot_h}" '
                       f'y2="{TOP + plot_h + 4}"/><text class="tick" x="{x:.1f}" '
                       f'y="{TOP + plot_h + 18}" text-anchor="middle">'
                       f'{escape(x_axis.fmt(tick))}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" '
               f'y2="{TOP + plot_h}"/><line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" '
               f'y2="{TOP + plot_h}"/>')
    out.append(f'<text class="axis-title" x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" '
               f'text-anchor="middle">{escape(x_axis.title)}</text>')
    out.append(f'<text class="axis-title" transform="translate(14,{TOP + plot_h / 2}) '
               f'rotate(-90)" text-anchor="middle">{escape(y_axis.title)}</text>')
    if y2_axis is not None:
        out.append(f'<text class="axis-title" transform="translate({WIDTH - 10},'
                   f'{TOP + plot_h / 2}) rotate(90)" text-anchor="middle">'
                   f'{escape(y2_axis.title)}</text>')
    slot = bar_step * plot_w / max(x_hi - x_lo, 1e-9) * 0.8
    for s in series:
        out.append(_draw(s, sx, sy, bars, slot))
    out.append(_legend(series, bands))
    out.append("</svg>")
    return Markup("".join(out))


def _draw(s: Series, sx: Callable[[float], float], sy: Callable[[float, str], float],
          bars: list[Series], slot: float) -> str:
    raw = s.raw if s.raw is not None else [y for _, y in s.points]
    parts = [f'<g class="series" data-series="{_attr(s.name)}">']
    coords = [(sx(x), sy(y, s.axis)) for x, y in s.points]
    if s.kind == "bar":
        width = slot / max(len(bars), 1)
        offset = bars.index(s) * width - slot / 2
        base = sy(0.0, s.axis)
        for (x, _), (px, py), value in zip(s.points, coords, raw, strict=True):
            top, height = min(py, base), abs(base - py)
            parts.append(f'<rect class="pt" data-series="{_attr(s.name)}" data-x="{x:g}" '
                         f'data-raw="{value!r}" x="{px + offset:.1f}" y="{top:.1f}" '
                         f'width="{width:.1f}" height="{max(height, 0.5):.1f}" '
                         f'fill="{s.color}"><title>{escape(s.name)}: {value:g}</title></rect>')
    else:
        if s.kind == "step" and coords:
            path = [coords[0]]
            for px, py in coords[1:]:
                path += [(px, path[-1][1]), (px, py)]
            if s.end_x is not None:
                path.append((sx(s.end_x), path[-1][1]))
            coords_line = path
        else:
            coords_line = coords
        if s.kind != "dots" and len(coords_line) > 1:
            dash = ' stroke-dasharray="6 4"' if s.kind == "dashed" else ""
            points = " ".join(f"{px:.1f},{py:.1f}" for px, py in coords_line)
            parts.append(f'<polyline fill="none" stroke="{s.color}" stroke-width="2"{dash} '
                         f'points="{points}"/>')
        radius = 3.5 if len(coords) <= 30 else 2.0
        for (x, _), (px, py), value in zip(s.points, coords, raw, strict=True):
            parts.append(f'<circle class="pt" data-series="{_attr(s.name)}" data-x="{x:g}" '
                         f'data-raw="{value!r}" cx="{px:.1f}" cy="{py:.1f}" r="{radius}" '
                         f'fill="{s.color}"><title>{escape(s.name)}: {value:g}</title></circle>')
    parts.append("</g>")
    return "".join(parts)


def _legend(series: Sequence[Series], bands: Sequence[Band]) -> str:
    items = [(s.name, s.color, str(s.kind)) for s in series]
    items += [(b.label, b.color, "band") for b in bands]
    parts, x = ['<g class="legend">'], float(LEFT)
    for name, color, kind in items:
        opacity = ' fill-opacity="0.25"' if kind == "band" else ""
        parts.append(f'<rect x="{x:.0f}" y="25" width="12" height="12" fill="{color}"{opacity}/>'
                     f'<text class="legend-label" x="{x + 16:.0f}" y="35">{escape(name)}</text>')
        x += 28 + 6.5 * len(name)
    parts.append("</g>")
    return "".join(parts)


def heatmap(chart_id: str, title: str, rows: Sequence[str], columns: Sequence[int],
            cells: dict[tuple[str, int], tuple[int, int]], x_title: str, y_title: str) -> Markup:
    """Rows x columns grid; a cell's (selected, total) sets its shade (selected / total).
    Each cell carries ``data-row``, ``data-col``, ``data-selected`` and ``data-total``."""
    cell_w = max(14.0, min(110.0, (WIDTH - 170) / max(len(columns), 1)))
    cell_h = max(8.0, min(30.0, 480 / max(len(rows), 1)))
    left, top = 130, 46
    height = top + cell_h * len(rows) + 50
    width = WIDTH
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="{_attr(chart_id)}" class="chart '
           f'heatmap" viewBox="0 0 {width} {height:.0f}" role="img" '
           f'aria-label="{_attr(title)}">',
           f'<text x="10" y="18" class="chart-title">{escape(title)}</text>',
           '<text class="legend-label" x="10" y="35">shade: tensors trained / tensors of '
           'the layer trained in any epoch (pale 0%, dark 100%)</text>']
    for r, row in enumerate(rows):
        y = top + r * cell_h
        out.append(f'<text class="tick" x="{left - 6}" y="{y + cell_h * 0.72:.1f}" '
                   f'text-anchor="end">{escape(row)}</text>')
        for c, column in enumerate(columns):
            selected, total = cells.get((row, column), (0, 0))
            share = selected / total if total else 0.0
            out.append(f'<rect class="cell" data-row="{_attr(row)}" data-col="{column}" '
                       f'data-selected="{selected}" data-total="{total}" '
                       f'x="{left + c * cell_w:.1f}" y="{y:.1f}" width="{cell_w - 1:.1f}" '
                       f'height="{cell_h - 1:.1f}" fill="#1b7f4c" '
                       f'fill-opacity="{0.06 + 0.94 * share:.2f}"><title>{escape(row)}, '
                       f'epoch {column}: {selected}/{total} tensors</title></rect>')
    bottom = top + cell_h * len(rows)
    for c, column in enumerate(columns):
        out.append(f'<text class="tick" x="{left + (c + 0.5) * cell_w:.1f}" '
                   f'y="{bottom + 16:.1f}" text-anchor="middle">{column}</text>')
    out.append(f'<text class="axis-title" x="{left + cell_w * len(columns) / 2:.1f}" '
               f'y="{bottom + 36:.1f}" text-anchor="middle">{escape(x_title)}</text>')
    out.append(f'<text class="axis-title" x="{left - 6}" y="{top - 2}" text-anchor="end">'
               f'{escape(y_title)}</text>')
    out.append("</svg>")
    return Markup("".join(out))
