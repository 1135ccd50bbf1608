from decimal import Decimal

from django import template
from django.utils.html import format_html

register = template.Library()

WIDTH, HEIGHT = 84, 20


@register.simple_tag
def sparkline(values: list[Decimal]) -> str:
    """A tiny inline SVG line of daily values (no script, so it passes the CSP)."""
    if not values:
        return ""
    top = max(values) or Decimal(1)
    step = WIDTH / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{HEIGHT - 2 - float(v / top) * (HEIGHT - 4):.1f}" for i, v in enumerate(values))
    label = ", ".join(f"${v:.2f}" for v in values)
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="Daily spend, last {} days: {}"><polyline points="{}" fill="none" '
        'stroke="currentColor" stroke-width="1.5"/></svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        len(values),
        label,
        points,
    )
