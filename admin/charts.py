"""Charts drawn on the server as inline SVG: no chart library, no script, nothing from a CDN.

Each function takes the same rows the page's table shows and returns Markup, so chart and table
cannot disagree. Every bar and point carries a <title> (hover shows the exact value) and the
chart an aria-label; numbers are formatted by the caller's `fmt` as in the table.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH = 720
BAR_HEIGHT = 22
COLOURS = ("#1f6feb", "#d4731c", "#2da44e", "#8250df", "#cf222e")


def _fmt_default(value: float) -> str:
    return f"{value:g}"


def _scale_max(values: Sequence[float | None]) -> float:
    present = [v for v in values if v is not None]
    top = max(present, default=0.0)
    return top if top > 0 else 1.0


def bar_chart(rows: Sequence[tuple[str, float | None]], *, title: str,
              fmt: Callable[[float], str] = _fmt_default, target: float | None = None,
              bad: Callable[[float], bool] | None = None) -> Markup:
    """Horizontal bars, one per (label, value); None is drawn as "无数据".

    `target` draws a dashed line at that value; `bad(value)` colours a bar red (below target).
    """
    label_w, value_w = 180, 70
    plot_w = WIDTH - label_w - value_w
    top = _scale_max([v for _, v in rows] + ([target] if target is not None else []))
    height = BAR_HEIGHT * len(rows) + 10
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value) in enumerate(rows):
        y = 5 + i * BAR_HEIGHT
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" '
                     f'class="chart-label">{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{label_w}" y="{y + 15}" class="chart-none">无数据</text>')
            continue
        w = max(1.0, plot_w * value / top)
        colour = "#cf222e" if bad and bad(value) else COLOURS[0]
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{BAR_HEIGHT - 6}" '
                     f'fill="{colour}"><title>{escape(label)}：{escape(fmt(value))}</title></rect>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" class="chart-value">'
                     f'{escape(fmt(value))}</text>')
    if target is not None:
        x = label_w + plot_w * target / top
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" stroke="#57606a" '
                     f'stroke-dasharray="4 3"><title>目标 {escape(fmt(target))}</title></line>')
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(labels: Sequence[str], series: dict[str, Sequence[float | None]], *, title: str,
               fmt: Callable[[float], str] = _fmt_default) -> Markup:
    """One line per series over the same x labels (periods); a None leaves a gap."""
    left, right, top_pad, bottom = 56, 16, 12, 40
    height = 240
    plot_w, plot_h = WIDTH - left - right, height - top_pad - bottom
    top = _scale_max([v for values in series.values() for v in values])
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top_pad + plot_h * (1 - v / top)

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{WIDTH - right}" y2="{top_pad + plot_h}" '
             f'stroke="#8c959f"/>',
             f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" class="chart-axis">'
             f'{escape(fmt(top))}</text>',
             f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" class="chart-axis">0</text>']
    step = max(1, n // 12)                      # at most about 12 x labels
    for i, label in enumerate(labels):
        if i % step == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                         f'class="chart-axis">{escape(label)}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        runs, run = [], []
        for i, v in enumerate(values):
            if v is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append((i, v))
        if run:
            runs.append(run)
        for run in runs:
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for i, v in run:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                             f'<title>{escape(name)} {escape(labels[i])}：{escape(fmt(v))}</title></circle>')
        parts.append(f'<text x="{left + 8 + 140 * k}" y="{height - 6}" fill="{colour}" '
                     f'class="chart-legend">■ {escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram(buckets: Sequence[tuple[str, int]], *, title: str) -> Markup:
    """Vertical bars of counts per bucket (a distribution of waits)."""
    left, bottom, top_pad = 40, 40, 16
    height = 220
    plot_w, plot_h = WIDTH - left - 10, height - top_pad - bottom
    top = _scale_max([c for _, c in buckets])
    n = max(len(buckets), 1)
    bar_w = plot_w / n
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, count) in enumerate(buckets):
        h = plot_h * count / top
        bx = left + i * bar_w
        parts.append(f'<rect x="{bx + 2:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bar_w - 4:.1f}" '
                     f'height="{h:.1f}" fill="{COLOURS[0]}"><title>{escape(label)}：{count}</title></rect>')
        parts.append(f'<text x="{bx + bar_w / 2:.1f}" y="{top_pad + plot_h - h - 3:.1f}" '
                     f'text-anchor="middle" class="chart-value">{count}</text>')
        parts.append(f'<text x="{bx + bar_w / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                     f'class="chart-axis">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
