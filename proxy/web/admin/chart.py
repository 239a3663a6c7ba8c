"""The console's usage chart: an inline SVG line chart of requests per vendor per day.

Contract: ``series_by_vendor`` turns daily rows into at most ``PALETTE_SIZE`` lines (the rest
summed as "other vendors"); ``usage_chart`` draws them with gridlines and labelled axes,
styled by the ``.chart``/``.sN`` classes of pages.ADMIN_CSS (no script, no inline style);
``legend`` names the lines. Pure functions from values to escaped ``str``.
Not here: the page around it (pages.py).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from proxy.web.admin.models import UsageRowOut

PALETTE_SIZE: Final = 8  # classes .s0-.s7 above (Okabe-Ito colours, told apart by dashes too)
OTHERS: Final = "other vendors"
WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 28, 24, 44  # room for the labels at the edges
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True, slots=True)
class Series:
    """One line of the chart: a label and one value per day."""

    label: str
    values: tuple[int, ...]


def series_by_vendor(rows: Sequence[UsageRowOut], days: tuple[date, ...]) -> list[Series]:
    """Requests per vendor per day (libraries summed); the busiest vendors get their own line."""
    index = {day: i for i, day in enumerate(days)}
    per_vendor: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for row in rows:
        if row.day in index:
            per_vendor[row.vendor][index[row.day]] += row.requests
    ranked = sorted(per_vendor.items(), key=lambda item: (-sum(item[1]), item[0]))
    keep, rest = ranked[: PALETTE_SIZE - 1], ranked[PALETTE_SIZE - 1 :]
    if len(rest) == 1:
        keep, rest = ranked, []
    series = [Series(vendor, tuple(values)) for vendor, values in keep]
    if rest:
        series.append(
            Series(OTHERS, tuple(sum(col) for col in zip(*(v for _, v in rest), strict=True)))
        )
    return series


def axis_step(peak: int, ticks: int = 4) -> int:
    """A round step (1, 2 or 5 × 10^k) so that about ``ticks`` steps cover ``peak``."""
    raw = max(peak, ticks) / ticks
    exp = int(10 ** math.floor(math.log10(raw)))
    return next(m * exp for m in (1, 2, 5, 10) if m * exp >= raw)


def compact(value: int) -> str:
    """1234 → '1,234'; 12500 → '12.5k'; 3400000 → '3.4M' (axis labels stay short)."""
    if value < 10_000:
        return f"{value:,}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}".rstrip("0").rstrip(".") + "k"
    return f"{value / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"


def usage_chart(days: tuple[date, ...], series: Sequence[Series]) -> str:
    """An SVG line chart: one polyline per series, gridlines, labelled axes."""
    peak = max((max(s.values, default=0) for s in series), default=0)
    step = axis_step(peak)
    top = step * max(1, math.ceil(peak / step))

    def x(i: int) -> float:
        return LEFT + i * PLOT_W / max(len(days) - 1, 1)

    def y(v: int) -> float:
        return TOP + PLOT_H * (1 - v / top)

    first, last = day_label(days[0]), day_label(days[-1])
    desc = f"{len(series)} line(s), {first} to {last}; busiest day {peak:,}."
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Requests per vendor per day</title>',
        f'<desc id="chart-desc">{escape(desc)}</desc>',
        *_y_axis(top, step, y),
        *_x_axis(days, x),
    ]
    for i, s in enumerate(series):
        points = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in enumerate(s.values))
        label = f"{s.label}: {sum(s.values):,} requests"
        parts.append(
            f'<polyline class="series s{i % PALETTE_SIZE}" points="{points}">'
            f"<title>{escape(label)}</title></polyline>"
        )
    return "".join(parts) + "</svg>"


def _y_axis(top: int, step: int, y: Callable[[int], float]) -> list[str]:
    out = [
        f'<text class="title" x="{LEFT}" y="{TOP - 8}">Requests per day</text>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + PLOT_H}"/>',
    ]
    for value in range(0, top + 1, step):
        at = f"{y(value):.1f}"
        out.append(f'<line class="grid" x1="{LEFT}" y1="{at}" x2="{WIDTH - RIGHT}" y2="{at}"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{at}" text-anchor="end" dy="4">{compact(value)}</text>'
        )
    return out


def _x_axis(days: tuple[date, ...], x: Callable[[int], float]) -> list[str]:
    base = TOP + PLOT_H
    out = [f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}"/>']
    for i, day in enumerate(days):
        if (len(days) - 1 - i) % 7 == 0:  # weekly ticks, ending on the newest day
            out.append(
                f'<line class="axis" x1="{x(i):.1f}" y1="{base}" x2="{x(i):.1f}" y2="{base + 4}"/>'
            )
            out.append(
                f'<text x="{x(i):.1f}" y="{base + 16}" text-anchor="middle">{day_label(day)}</text>'
            )
    out.append(
        f'<text class="title" x="{LEFT + PLOT_W / 2:.0f}" y="{HEIGHT - 6}" '
        'text-anchor="middle">Day (UTC)</text>'
    )
    return out


def legend(series: Sequence[Series]) -> str:
    items = "".join(
        f'<li><svg viewBox="0 0 32 8" aria-hidden="true"><line class="series s{i % PALETTE_SIZE}"'
        f' x1="2" y1="4" x2="30" y2="4"/></svg> {escape(s.label)} '
        f"({sum(s.values):,} requests)</li>"
        for i, s in enumerate(series)
    )
    return f'<ul class="legend" aria-label="Legend">{items}</ul>'


def day_label(day: date) -> str:
    return f"{day.day} {day:%b}"
