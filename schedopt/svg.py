"""Line charts written directly as SVG text: panels side by side, no matplotlib.

``schedopt design``'s figure (``design.svg``) is drawn with this: importing and running
matplotlib cost more CPU than the rest of a small design (issue 13). One job only: a
:class:`Panel` collects lines, reference lines and notes; :func:`figure_svg` lays the panels
out in a row and returns the SVG document. Axes are linear (ticks at 1-2-5 steps) or
logarithmic (ticks at decades; over less than two decades, at mantissas or 1-2-5 steps), labelled
with plain numbers. Non-finite values (and values <= 0 on a log axis) break a line, so no NaN
reaches the file; a long line is reduced to at most ``MAX_POINTS`` points (min/max per bucket
of consecutive points), so the file stays small at any horizon.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

__all__ = ["COLOURS", "MAX_POINTS", "Panel", "figure_svg", "linear_ticks", "log_ticks"]

COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
"""Matplotlib's default colour cycle (``C0`` ... ``C9``): the same colours as the PNG figures."""

MAX_POINTS = 2000
"""The most points one polyline keeps (min/max decimation above it)."""

# layout of one panel, in pixels (SVG user units)
WIDTH, PLOT_HEIGHT = 470, 300
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 34, 50
LEGEND_ROW = 15
FONT = 11


@dataclasses.dataclass
class _Line:
    x: np.ndarray
    y: np.ndarray
    colour: str
    width: float
    opacity: float
    label: str | None
    dash: str | None
    on_top: bool = False


@dataclasses.dataclass
class Panel:
    """One chart: a title, axis labels and scales; lines, reference lines and notes are added to it.

    ``xlim`` / ``ylim`` default to the lines' finite range (a little padding on linear axes).
    Lines outside the limits are clipped to the plot area.
    """

    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xlog: bool = False
    ylog: bool = False
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    lines: list[_Line] = dataclasses.field(default_factory=list)
    hlines: list[tuple[float, _Line]] = dataclasses.field(default_factory=list)
    vlines: list[tuple[float, _Line]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def line(
        self,
        x,
        y,
        *,
        colour: str = "black",
        width: float = 1.0,
        opacity: float = 1.0,
        label: str | None = None,
        dash: str | None = None,
        on_top: bool = False,
    ) -> None:
        """A polyline through (x, y); later lines are drawn over earlier ones, ``on_top`` ones over all."""
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"x and y differ in length: {x.size} and {y.size}")
        self.lines.append(_Line(x, y, colour, width, opacity, label, dash, on_top))

    def hline(self, y: float, *, colour: str = "black", width: float = 1.0, label=None, dash=None) -> None:
        """A horizontal line across the panel at ``y``."""
        self.hlines.append((float(y), _Line(np.zeros(0), np.zeros(0), colour, width, 1.0, label, dash)))

    def vline(self, x: float, *, colour: str = "black", width: float = 1.0, label=None, dash=None) -> None:
        """A vertical line across the panel at ``x``."""
        self.vlines.append((float(x), _Line(np.zeros(0), np.zeros(0), colour, width, 1.0, label, dash)))

    def note(self, text: str) -> None:
        """A line of small text in the plot area's top left corner."""
        self.notes.append(text)

    def legend(self) -> list[_Line]:
        """The labelled lines, in the order they were added (reference lines last)."""
        every = [*self.lines, *(line for _, line in self.hlines), *(line for _, line in self.vlines)]
        return [line for line in every if line.label]


def _usable(values: np.ndarray, log: bool) -> np.ndarray:
    """Which values can be drawn: finite, and positive on a log axis."""
    ok = np.isfinite(values)
    if log:
        ok &= values > 0
    return ok


def _limits(panel: Panel, axis: str) -> tuple[float, float]:
    """An axis's range: the one set, else the lines' (and reference lines') drawable range."""
    log = panel.xlog if axis == "x" else panel.ylog
    given = panel.xlim if axis == "x" else panel.ylim
    if given is not None and all(math.isfinite(float(v)) for v in given):
        lo, hi = float(given[0]), float(given[1])
    else:
        parts = [line.x if axis == "x" else line.y for line in panel.lines]
        parts.append(
            np.array([v for v, _ in (panel.vlines if axis == "x" else panel.hlines)], dtype=np.float64)
        )
        values = np.concatenate(parts) if parts else np.zeros(0)
        values = values[_usable(values, log)]
        if values.size == 0:
            lo, hi = (1.0, 10.0) if log else (0.0, 1.0)
        else:
            lo, hi = float(values.min()), float(values.max())
            if not log and axis == "y":  # room above and below, as matplotlib leaves
                pad = 0.05 * (hi - lo)
                lo, hi = lo - pad, hi + pad
    if log:
        lo = lo if math.isfinite(lo) and lo > 0 else 1e-300
        hi = hi if math.isfinite(hi) and hi > 0 else lo * 10
    if not hi > lo:  # one value: a range around it
        if log:
            lo, hi = lo / 2, hi * 2
        else:
            half = abs(lo) * 0.05 or 0.5
            lo, hi = lo - half, hi + half
    return lo, hi


def linear_ticks(lo: float, hi: float, *, most: int = 8) -> list[float]:
    """Ticks at multiples of a 1-2-5 step in [lo, hi], at most ``most`` of them (at least two)."""
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return [lo]
    step = 10.0 ** math.floor(math.log10(span / most))
    for factor in (1, 2, 5, 10, 20, 50):
        if span / (step * factor) <= most - 1:
            step *= factor
            break
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def log_ticks(lo: float, hi: float, *, most: int = 8) -> list[float]:
    """Ticks on a log axis over [lo, hi]: decades (every k-th if there are many); over less than two
    decades, 1-2-5 mantissas (all nine if those are fewer than three; linear 1-2-5 steps over a
    range narrower still, as a fitted spec's network losses can be)."""
    a, b = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    decades = [e for e in range(a, b + 1) if lo * (1 - 1e-9) <= 10.0**e <= hi * (1 + 1e-9)]
    if len(decades) >= 2:
        every = math.ceil(len(decades) / most)
        return [10.0**e for e in decades if e % every == 0]
    for mantissas in ((1, 2, 5), range(1, 10)):
        ticks = [m * 10.0**e for e in range(a - 1, b + 1) for m in mantissas]
        ticks = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        if len(ticks) >= 3:
            every = math.ceil(len(ticks) / most)
            return ticks[::every]
    return [t for t in linear_ticks(lo, hi, most=most) if t > 0]  # a narrow range: 1-2-5 steps


def tick_label(value: float) -> str:
    """A tick's text: a plain number (0.001, 250, 1000000), an exponent only far from 1 (1e-07)."""
    if value == 0:
        return "0"
    if abs(value) >= 1 and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.6g}"
    if "e" in text and 1e-4 <= abs(value) < 1e15:
        text = f"{value:.10f}".rstrip("0").rstrip(".")
    return text.replace("e-0", "e-").replace("e+0", "e+")


class _Axis:
    """A map from data values to pixels along one axis."""

    def __init__(self, lo: float, hi: float, start: float, end: float, log: bool) -> None:
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        self.start, self.end = start, end

    def __call__(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log10(values) if self.log else np.asarray(values, dtype=np.float64)
        pixels = self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)
        return np.clip(pixels, -1e5, 1e5)  # far outside the clipped plot area: the same picture


def _decimate(index: np.ndarray, y: np.ndarray, keep: int) -> np.ndarray:
    """Of consecutive ``index`` (one unbroken run), at most ``keep`` (even): each bucket's min and max."""
    if index.size <= keep:
        return index
    size = math.ceil(index.size / max(keep // 2, 1))
    whole = index.size // size * size
    chunks = index[:whole].reshape(-1, size)
    values = y[chunks]
    low = chunks[np.arange(chunks.shape[0]), values.argmin(axis=1)]
    high = chunks[np.arange(chunks.shape[0]), values.argmax(axis=1)]
    kept = [np.minimum(low, high), np.maximum(low, high)]
    if whole < index.size:
        rest = index[whole:]
        kept += [rest[[y[rest].argmin()]], rest[[y[rest].argmax()]]]
    return np.unique(np.concatenate([*kept, index[[0, -1]]]))


def _runs(ok: np.ndarray) -> list[np.ndarray]:
    """The unbroken runs of True in ``ok``, as index arrays."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], ok, [False]]).astype(np.int8)))
    return [np.arange(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _polylines(line: _Line, fx: _Axis, fy: _Axis, panel: Panel, max_points: int) -> list[str]:
    ok = _usable(line.x, panel.xlog) & _usable(line.y, panel.ylog)
    runs = _runs(ok)
    total = sum(r.size for r in runs)
    out = []
    for run in runs:
        keep = max(2, (max_points * run.size) // max(total, 1) // 2 * 2)
        run = _decimate(run, line.y, keep)
        px, py = fx(line.x[run]), fy(line.y[run])
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px.tolist(), py.tolist(), strict=True))
        if run.size == 1:  # a lone point: a dot
            out.append(f'<circle cx="{px[0]:.1f}" cy="{py[0]:.1f}" r="{line.width:g}" fill="{line.colour}"/>')
        else:
            out.append(f'<polyline points="{points}"{_stroke(line)}/>')
    return out


def _stroke(line: _Line) -> str:
    text = f' fill="none" stroke="{line.colour}" stroke-width="{line.width:g}"'
    if line.opacity < 1:
        text += f' stroke-opacity="{line.opacity:g}"'
    if line.dash:
        text += f' stroke-dasharray="{line.dash}"'
    return text


def _text(x: float, y: float, text: str, *, size: int = FONT, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _panel(panel: Panel, index: int, max_points: int) -> str:
    x0, y0 = index * WIDTH + LEFT, TOP
    x1, y1 = (index + 1) * WIDTH - RIGHT, TOP + PLOT_HEIGHT
    xlo, xhi = _limits(panel, "x")
    ylo, yhi = _limits(panel, "y")
    fx, fy = _Axis(xlo, xhi, x0, x1, panel.xlog), _Axis(ylo, yhi, y1, y0, panel.ylog)
    clip = f"panel{index}"
    parts = [
        f'<g class="panel" id="{clip}-group">',
        f'<clipPath id="{clip}"><rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}"/></clipPath>',
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="black" stroke-width="0.8"/>',
    ]
    xticks = (log_ticks if panel.xlog else linear_ticks)(xlo, xhi)
    yticks = (log_ticks if panel.ylog else linear_ticks)(ylo, yhi)
    grid = 'stroke="#b0b0b0" stroke-opacity="0.5" stroke-width="0.8"'
    for value, px in zip(xticks, fx(np.array(xticks)).tolist(), strict=True):
        parts.append(
            f'<line class="xtick" data-value="{value!r}" x1="{px:.2f}" y1="{y0}" x2="{px:.2f}" y2="{y1}" {grid}/>'
        )
        parts.append(_text(px, y1 + 14, tick_label(value), anchor="middle"))
    for value, py in zip(yticks, fy(np.array(yticks)).tolist(), strict=True):
        parts.append(
            f'<line class="ytick" data-value="{value!r}" x1="{x0}" y1="{py:.2f}" x2="{x1}" y2="{py:.2f}" {grid}/>'
        )
        parts.append(_text(x0 - 4, py + 4, tick_label(value), anchor="end"))
    parts.append(f'<g clip-path="url(#{clip})">')
    for x, line in panel.vlines:
        if _usable(np.array([x]), panel.xlog)[0]:
            px = float(fx(np.array([x]))[0])
            parts.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}"{_stroke(line)}/>')
    for line in sorted(panel.lines, key=lambda line: line.on_top):
        parts.extend(_polylines(line, fx, fy, panel, max_points))
    for y, line in panel.hlines:
        if _usable(np.array([y]), panel.ylog)[0]:
            py = float(fy(np.array([y]))[0])
            parts.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}"{_stroke(line)}/>')
    parts.append("</g>")
    for k, note in enumerate(panel.notes):
        parts.append(_text(x0 + 6, y0 + 14 + 12 * k, note, size=FONT - 2))
    parts.append(_text((x0 + x1) / 2, TOP - 12, panel.title, size=FONT + 1, anchor="middle"))
    parts.append(_text((x0 + x1) / 2, y1 + 32, panel.xlabel, anchor="middle"))
    middle = (y0 + y1) / 2
    rotate = f' transform="rotate(-90 {x0 - 56} {middle:.1f})"'
    parts.append(_text(x0 - 56, middle, panel.ylabel, anchor="middle", extra=rotate))
    for k, line in enumerate(panel.legend()):
        y = y1 + BOTTOM + LEGEND_ROW * k + 4
        sample = dataclasses.replace(line, opacity=1.0)
        parts.append(f'<line x1="{x0}" y1="{y - 4}" x2="{x0 + 24}" y2="{y - 4}"{_stroke(sample)}/>')
        parts.append(_text(x0 + 30, y, line.label or "", size=FONT - 1))
    parts.append("</g>")
    return "\n".join(parts)


def figure_svg(panels: Sequence[Panel], *, max_points: int = MAX_POINTS) -> str:
    """The SVG document of ``panels`` side by side (each ``WIDTH`` pixels wide; legends below)."""
    rows = max((len(p.legend()) for p in panels), default=0)
    width = WIDTH * len(panels)
    height = TOP + PLOT_HEIGHT + BOTTOM + LEGEND_ROW * rows + 8
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family={quoteattr("DejaVu Sans, Arial, sans-serif")}>'
    )
    body = [_panel(p, i, max_points) for i, p in enumerate(panels)]
    background = f'<rect width="{width}" height="{height}" fill="white"/>'
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', head, background, *body, "</svg>"]) + "\n"
