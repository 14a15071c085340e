"""Small server-side SVG charts (no JavaScript needed to see them; they print well too)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#7a1f1f", "#c9a227", "#1a4f8a", "#2a7a2a", "#8a4f9e", "#d2691e", "#4a7a7a")


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


_FONT_PX = 12
"""The charts' text size (portal.css ``svg.chart text``): labels are wrapped by it."""


def _text_width(text: str) -> float:
    """The width of ``text`` at the charts' size, estimated on the wide side: CJK and other
    full-width characters one em, the rest 0.62 em (capital Latin letters are about that)."""
    return sum(_FONT_PX if unicodedata.east_asian_width(c) in "WF" else _FONT_PX * 0.62
               for c in text)


def wrap_label(text: str, width: float) -> list[str]:
    """``text`` in lines no wider than ``width`` px: broken after spaces, hyphens and
    slashes where it can be, inside a run of letters only where a run is too wide itself.
    Every character is kept (the spaces broken at excepted)."""
    lines: list[str] = []
    line = ""
    for piece in re.findall(r"[^\s\-/]*[\-/]|[^\s\-/]+\s*|\s+", text):
        if _text_width(line + piece.rstrip()) <= width:
            line += piece
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = ""
        for char in piece:                      # a piece wider than a line on its own
            if _text_width(line + char) > width and line.strip():
                lines.append(line.rstrip())
                line = ""
            line += char
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def bar_chart(
    data: Sequence[tuple[str, float]], title: str, width: int = 520, unit: str = "",
    links: Sequence[str] | None = None, label_width: int = 150, stacked: bool = False,
) -> Markup:
    """Horizontal bars, one per (label, value), largest scale = the largest value; with
    ``links`` each bar and its label lead to that address (a search of what it counts).
    Labels sit left of their bars in ``label_width``, or with ``stacked`` above them across
    the chart (for long names: the chart can be narrow and so stays legible on a phone).
    A label too wide for its room wraps onto more lines, whole; its tooltip is the whole
    name too. Each label's ``data-right`` is where its room ends (tests measure it)."""
    data = list(data)[:20]
    line_h, top = 14, 28
    label_w = 0 if stacked else label_width
    room = width - 8 if stacked else label_w - 8
    wrapped = [wrap_label(str(label), room) for label, _ in data]
    rows = ([line_h * len(lines) + 24 for lines in wrapped] if stacked
            else [max(22, line_h * len(lines) + 8) for lines in wrapped])
    height = top + sum(rows) + 10 if data else top + 32
    peak = max((v for _, v in data), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    span = width - label_w - 70
    y = top
    for i, ((label, value), lines, row) in enumerate(zip(data, wrapped, rows)):
        bar = max(1.0, span * value / peak) if value else 0
        link = links[i] if links and i < len(links) else None
        if stacked:                 # the label's lines, then the bar below them
            x, anchor, first = 0, "start", y + 12
            middle = y + line_h * len(lines) + 9
        else:                       # the lines centred beside the bar
            middle = y + row / 2
            x, anchor = label_w - 6, "end"
            first = middle - line_h * (len(lines) - 1) / 2 + 4
        if link:
            parts.append(f'<a href="{escape(link)}">')
        spans = "".join(
            f'<tspan x="{x}" y="{first + n * line_h:.1f}">{escape(text)}</tspan>'
            for n, text in enumerate(lines))
        parts.append(f'<text class="bar-label" text-anchor="{anchor}" '
                     f'data-right="{width if stacked else label_w}"><title>{escape(str(label))}'
                     f"</title>{spans}</text>")
        parts.append(
            f'<rect x="{label_w}" y="{middle - 7.5:.1f}" width="{bar:.1f}" height="15" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(str(label))}: '
            f"{_fmt(value)}{escape(unit)}</title></rect>"
        )
        parts.append(
            f'<text x="{label_w + bar + 5:.1f}" y="{middle + 4:.1f}">'
            f"{_fmt(value)}{escape(unit)}</text>"
        )
        if link:
            parts.append("</a>")
        y += row
    if not data:
        parts.append(f'<text x="{label_w}" y="{top + 15}">—</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(
    data: Sequence[tuple[str, float]],
    title: str,
    width: int = 520,
    height: int = 220,
    unit: str = "",
) -> Markup:
    """Vertical columns over time (labels along the bottom, every few shown)."""
    data = list(data)[-36:]
    left, bottom, top = 44, 34, 28
    peak = max((v for _, v in data), default=0) or 1
    inner_w, inner_h = width - left - 10, height - top - bottom
    step = inner_w / max(len(data), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + inner_h}" x2="{width - 10}" y2="{top + inner_h}" '
        f'stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{_fmt(peak)}</text>',
        f'<text x="{left - 4}" y="{top + inner_h}" text-anchor="end">0</text>',
    ]
    every = max(1, len(data) // 8)
    for i, (label, value) in enumerate(data):
        h = inner_h * value / peak
        x = left + i * step
        parts.append(
            f'<rect x="{x + step * 0.15:.1f}" y="{top + inner_h - h:.1f}" '
            f'width="{step * 0.7:.1f}" height="{h:.1f}" fill="{PALETTE[2]}">'
            f"<title>{escape(str(label))}: {_fmt(value)}{escape(unit)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 12}" text-anchor="middle">'
                f"{escape(str(label))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def gauge(fraction: float, title: str, width: int = 260, alarm: bool = False) -> Markup:
    """A horizontal gauge 0-100 % (red whatever the fraction when ``alarm``)."""
    fraction = min(max(fraction, 0.0), 1.0)
    colour = PALETTE[3] if fraction >= 0.999 else PALETTE[1] if fraction >= 0.8 else PALETTE[0]
    colour = "#b00020" if alarm else colour
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="60" viewBox="0 0 {width} 60"><title>{escape(title)}</title>'
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>'
        f'<rect x="0" y="26" width="{width - 60}" height="18" fill="#eee"/>'
        f'<rect x="0" y="26" width="{(width - 60) * fraction:.1f}" height="18" fill="{colour}"/>'
        f'<text x="{width - 54}" y="40">{fraction * 100:.1f}%</text></svg>'
    )
