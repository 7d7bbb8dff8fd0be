"""Small charts for the marts' materialization metadata, drawn as SVG and shown by the Dagster UI
as an image inside a Markdown value.

Hand-written SVG rather than a plotting library: a bar per day and a row per currency is a few dozen
lines, and matplotlib (or vega) would add tens of MB to the install for one picture. Currencies are
never summed: each gets its own row of bars, scaled to its own largest day.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import date
from xml.sax.saxutils import escape

ROW_HEIGHT = 70
LABEL_WIDTH = 150
BAR_GAP = 2
WIDTH = 640


def revenue_per_day_svg(rows: Sequence[tuple[str, date, int]]) -> str:
    """Net revenue per day, one row of bars per currency. `rows`: (currency, day, net_cents)."""
    days = sorted({d for _, d, _ in rows})
    currencies = sorted({c for c, _, _ in rows})
    if not days:
        return ""
    plot_width = WIDTH - LABEL_WIDTH - 10
    bar = max(1.0, plot_width / len(days) - BAR_GAP)
    height = ROW_HEIGHT * len(currencies) + 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{WIDTH}" height="{height}" fill="white"/>']
    values = {(c, d): v for c, d, v in rows}
    for i, currency in enumerate(currencies):
        top = i * ROW_HEIGHT + 8
        peak = max((values.get((currency, d), 0) for d in days), default=0)
        parts.append(f'<text x="4" y="{top + 28}" font-weight="bold">{escape(currency)}</text>')
        parts.append(f'<text x="4" y="{top + 44}" fill="#555">max {peak:,} minor units/day</text>')
        base = top + ROW_HEIGHT - 12
        parts.append(f'<line x1="{LABEL_WIDTH}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" stroke="#999"/>')
        for j, day in enumerate(days):
            value = values.get((currency, day), 0)
            h = 0 if peak <= 0 else max(0.0, (ROW_HEIGHT - 20) * value / peak)
            x = LABEL_WIDTH + j * (bar + BAR_GAP)
            parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="#4f6bed">'
                         f'<title>{escape(currency)} {day.isoformat()}: {value:,}</title></rect>')
    first, last = days[0].isoformat(), days[-1].isoformat()
    parts.append(f'<text x="{LABEL_WIDTH}" y="{height - 4}" fill="#555">{first}</text>')
    parts.append(f'<text x="{WIDTH - 10}" y="{height - 4}" fill="#555" text-anchor="end">{last}</text>')
    parts.append("</svg>")
    return "".join(parts)


def markdown_image(svg: str, alt: str) -> str:
    """A Markdown image whose source is the SVG itself (a data URI): nothing to host or fetch."""
    if not svg:
        return f"*{alt}: no data*"
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"
