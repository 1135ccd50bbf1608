from django import template

from accounts_app.selectors import RegionCleanup, cleanup_by_region

register = template.Library()


@register.filter
def by_region(report: dict) -> list[RegionCleanup]:
    """An account's cleanup report, region by region (accounts_app.selectors.cleanup_by_region)."""
    return cleanup_by_region(report or {})
