"""Small server-side SVG charts: lines, scatter, bars on linear or log axes.

Why server-side: the report must open with no network and no library; SVG drawn here
needs no script at all to show, and each mark carries a <title> so hovering shows its
value. Every chart is an <svg class="plot"> whose marks have class "mark", which the
report's tests count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Sequence

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
WIDTH, HEIGHT = 760, 300
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 16, 28, 44


@dataclass
class Series:
    """Points of one series; `kind` is line, scatter or bars (bars: x0, x1, y per point)."""

    name: str
    points: Sequence[tuple[float, ...]]
    kind: str = "line"
    color: str | None = None


@dataclass
class Marker:
    """A labelled vertical line (e.g. a percentile)."""

    x: float
    label: str


@dataclass
class Scale:
    lo: float
    hi: float
    px_lo: float
    px_hi: float
    log: bool = False

    def __post_init__(self) -> None:
        if self.log:
            self.lo = max(self.lo, 1e-9)
            self.hi = max(self.hi, self.lo * 10)
        elif self.hi <= self.lo:
            self.hi = self.lo + 1.0

    def __call__(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.px_lo + f * (self.px_hi - self.px_lo)

    def ticks(self) -> list[float]:
        if self.log:
            out = []
            e = math.floor(math.log10(self.lo))
            while 10**e <= self.hi * 1.0001:
                for m in (1, 2, 5):
                    v = m * 10**e
                    if self.lo <= v <= self.hi:
                        out.append(v)
                e += 1
            if len(out) > 9:
                out = [v for v in out if f"{v:g}".lstrip("0.").startswith("1")]
            return out
        span = self.hi - self.lo
        raw = span / 6
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step) + 1)]


def fmt(v: float) -> str:
    """Short human number: 0.25, 12.5, 1,200, 3.2M."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.3g}"
    if a == 0:
        return "0"
    return f"{v:.2g}"


def _bounds(values: list[float], log: bool, zero: bool) -> tuple[float, float]:
    vals = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
    if not vals:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if log:
        return lo / 1.2, hi * 1.2
    if zero:
        lo = min(0.0, lo)
    pad = (hi - lo) * 0.05 or 1.0
    return lo, hi + pad


def chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    x_label: str = "",
    y_label: str = "",
    x_log: bool = False,
    y_log: bool = False,
    markers: Sequence[Marker] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """One chart as an <svg> string (an empty-state message when no series has points)."""
    xs: list[float] = []
    ys: list[float] = []
    for s in series:
        for p in s.points:
            if s.kind == "bars":
                xs += [p[0], p[1]]
                ys.append(p[2])
            else:
                xs.append(p[0])
                ys.append(p[1])
    xs += [m.x for m in markers]
    head = (f'<svg class="plot" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(title)}">')
    out = [head, f'<text class="title" x="{MARGIN_L}" y="16">{escape(title)}</text>']
    if not ys:
        out.append(f'<text class="empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(out)
    x_lo, x_hi = _bounds(xs, x_log, zero=False)
    y_lo, y_hi = _bounds(ys, y_log, zero=True)
    sx = Scale(x_lo, x_hi, MARGIN_L, width - MARGIN_R, x_log)
    sy = Scale(y_lo, y_hi, height - MARGIN_B, MARGIN_T, y_log)
    out.append(_axes(sx, sy, width, height, x_label, y_label))
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        out.append(f'<g class="series" data-series="{escape(s.name)}" fill="{color}" stroke="{color}">')
        out.append(_marks(s, sx, sy))
        out.append("</g>")
    for m in markers:
        x = sx(m.x)
        out.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN_T}" y2="{height - MARGIN_B}"/>'
                   f'<text class="marker-label" x="{x + 3:.1f}" y="{MARGIN_T + 10}">{escape(m.label)}</text>')
    out.append(_legend(series, width))
    out.append("</svg>")
    return "".join(out)


def _axes(sx: Scale, sy: Scale, width: int, height: int, x_label: str, y_label: str) -> str:
    base = height - MARGIN_B
    out = [f'<line class="axis" x1="{MARGIN_L}" x2="{width - MARGIN_R}" y1="{base}" y2="{base}"/>',
           f'<line class="axis" x1="{MARGIN_L}" x2="{MARGIN_L}" y1="{MARGIN_T}" y2="{base}"/>']
    for v in sx.ticks():
        x = sx(v)
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}"/>'
                   f'<text class="tick-label" x="{x:.1f}" y="{base + 16}" text-anchor="middle">{fmt(v)}</text>')
    for v in sy.ticks():
        y = sy(v)
        out.append(f'<line class="grid" x1="{MARGIN_L}" x2="{width - MARGIN_R}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick-label" x="{MARGIN_L - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    out.append(f'<text class="axis-label" x="{(MARGIN_L + width - MARGIN_R) / 2}" y="{height - 6}" '
               f'text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text class="axis-label" transform="translate(14,{(MARGIN_T + base) / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    return "".join(out)


def _marks(s: Series, sx: Scale, sy: Scale) -> str:
    out: list[str] = []
    name = escape(s.name)
    if s.kind == "bars":
        base = sy(sy.lo)
        for x0, x1, y in s.points:
            left, right = sx(x0), sx(x1)
            top = sy(y)
            out.append(f'<rect class="mark" x="{left:.1f}" y="{top:.1f}" width="{max(1.0, right - left - 1):.1f}" '
                       f'height="{max(0.0, base - top):.1f}"><title>{name}: {fmt(x0)}–{fmt(x1)}: {fmt(y)}</title></rect>')
    elif s.kind == "scatter":
        for p in s.points:
            out.append(f'<circle class="mark" cx="{sx(p[0]):.1f}" cy="{sy(p[1]):.1f}" r="2.2">'
                       f'<title>{name}: x={fmt(p[0])}, y={fmt(p[1])}</title></circle>')
    else:
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        out.append(f'<polyline class="line" fill="none" stroke-width="1.6" points="{pts}"/>')
        step = max(1, len(s.points) // 120)
        for x, y in s.points[::step]:
            out.append(f'<circle class="mark" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="1.8">'
                       f'<title>{name}: x={fmt(x)}, y={fmt(y)}</title></circle>')
    return "".join(out)


def _legend(series: Sequence[Series], width: int) -> str:
    out = []
    x = width - MARGIN_R
    for i, s in reversed(list(enumerate(series))):
        color = s.color or PALETTE[i % len(PALETTE)]
        label = escape(s.name)
        x -= 14 + 7 * len(s.name)
        out.append(f'<g class="legend" data-series="{label}"><rect x="{x}" y="6" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + 13}" y="15">{label}</text></g>')
    return "".join(out)


@dataclass
class BarRow:
    label: str
    value: float
    note: str = ""


@dataclass
class HBars:
    """Horizontal bars by category (e.g. p99 wait by cohort)."""

    chart_id: str
    title: str
    rows: list[BarRow] = field(default_factory=list)
    unit: str = ""

    def svg(self, width: int = WIDTH) -> str:
        row_h = 20
        height = MARGIN_T + row_h * max(1, len(self.rows)) + 24
        out = [f'<svg class="plot" id="{escape(self.chart_id)}" xmlns="http://www.w3.org/2000/svg" '
               f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
               f'aria-label="{escape(self.title)}">',
               f'<text class="title" x="8" y="16">{escape(self.title)}</text>']
        if not self.rows:
            out.append(f'<text class="empty" x="{width / 2}" y="{height / 2 + 6}" text-anchor="middle">no data</text></svg>')
            return "".join(out)
        left = 170
        top = max(r.value for r in self.rows) or 1.0
        for i, r in enumerate(self.rows):
            y = MARGIN_T + i * row_h
            w = (width - left - 230) * (r.value / top)
            color = PALETTE[0]
            out.append(f'<text class="tick-label" x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(r.label)}</text>'
                       f'<rect class="mark" x="{left}" y="{y + 2}" width="{max(1.0, w):.1f}" height="{row_h - 6}" fill="{color}">'
                       f'<title>{escape(r.label)}: {fmt(r.value)} {escape(self.unit)} {escape(r.note)}</title></rect>'
                       f'<text class="tick-label" x="{left + max(1.0, w) + 6:.1f}" y="{y + 13}">{fmt(r.value)} {escape(self.unit)}'
                       f'{" · " + escape(r.note) if r.note else ""}</text>')
        out.append("</svg>")
        return "".join(out)
