"""Small bar charts drawn as inline SVG on the server (no script, allowed by the CSP)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def bar_chart(
    bars: Sequence[tuple[str, float]],
    unit: str = "",
    max_value: float | None = None,
    target: float | None = None,
    width: int = 640,
) -> Markup:
    """Horizontal bars with labels and values; `target` draws a dashed line (e.g. 95 %)."""
    row, label_w, value_w = 26, 220, 70
    plot_w = width - label_w - value_w
    top = max([max_value or 0.0, *[v for _, v in bars]]) or 1.0
    height = row * max(len(bars), 1) + 10
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, value) in enumerate(bars):
        y = i * row + 5
        w = max(plot_w * value / top, 0)
        shown = f"{value:.1f}{unit}" if unit == " %" else f"{value:g}{unit}"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label[:34])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="16" rx="2"></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 15}">{escape(shown)}</text>'
        )
    if target is not None:
        x = label_w + plot_w * target / top
        parts.append(f'<line class="target" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}"></line>')
    if not bars:
        parts.append(f'<text x="10" y="20">{escape("Chưa có dữ liệu")}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
