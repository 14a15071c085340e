"""Small server-side SVG charts (no JavaScript needed to see them; they print well too)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#7a1f1f", "#c9a227", "#1a4f8a", "#2a7a2a", "#8a4f9e", "#d2691e", "#4a7a7a")


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def bar_chart(
    data: Sequence[tuple[str, float]], title: str, width: int = 520, unit: str = "",
    links: Sequence[str] | None = None,
) -> Markup:
    """Horizontal bars, one per (label, value), largest scale = the largest value; with
    ``links`` each bar and its label lead to that address (a search of what it counts)."""
    data = list(data)[:20]
    row, label_w, top = 22, 150, 28
    height = top + row * max(len(data), 1) + 10
    peak = max((v for _, v in data), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    span = width - label_w - 70
    for i, (label, value) in enumerate(data):
        y = top + i * row
        bar = max(1.0, span * value / peak) if value else 0
        link = links[i] if links and i < len(links) else None
        if link:
            parts.append(f'<a href="{escape(link)}">')
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
            f"{escape(str(label))[:22]}</text>"
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{bar:.1f}" height="{row - 7}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(str(label))}: '
            f"{_fmt(value)}{escape(unit)}</title></rect>"
        )
        parts.append(
            f'<text x="{label_w + bar + 5:.1f}" y="{y + 15}">{_fmt(value)}{escape(unit)}</text>'
        )
        if link:
            parts.append("</a>")
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
