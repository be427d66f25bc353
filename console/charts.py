"""Small charts as inline SVG (no script, no inline style: classes the stylesheet
colours), drawn on the server from a list of numbers."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 160, 36


def bars(values: Sequence[float], label: str, kind: str = "sends") -> Markup:
    """A bar per value, scaled to the largest; `label` is the chart's accessible name."""
    top = max(values, default=0) or 1
    width = WIDTH / max(len(values), 1)
    rects = []
    for index, value in enumerate(values):
        height = 0 if not value else max(1.0, HEIGHT * value / top)
        rects.append(
            f'<rect x="{index * width:.1f}" y="{HEIGHT - height:.1f}" '
            f'width="{max(width - 1, 1):.1f}" height="{height:.1f}"/>'
        )
    return Markup(
        f'<svg class="chart {escape(kind)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<title>{escape(label)}</title><line class="axis" x1="0" y1="{HEIGHT - 0.5}" '
        f'x2="{WIDTH}" y2="{HEIGHT - 0.5}"/>{"".join(rects)}</svg>'
    )


def sparkline(values: Sequence[float], label: str, kind: str = "latency") -> Markup:
    """A line through the values, scaled to the largest."""
    top = max(values, default=0) or 1
    step = WIDTH / max(len(values) - 1, 1)
    points = " ".join(
        f"{index * step:.1f},{HEIGHT - 2 - (HEIGHT - 4) * value / top:.1f}"
        for index, value in enumerate(values)
    )
    return Markup(
        f'<svg class="chart {escape(kind)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<title>{escape(label)}</title><line class="axis" x1="0" y1="{HEIGHT - 0.5}" '
        f'x2="{WIDTH}" y2="{HEIGHT - 0.5}"/><polyline points="{points}"/></svg>'
    )
