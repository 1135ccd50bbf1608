"""The administrators' overview of the whole organization: every course's accounts and spend,
and every account, a page at a time."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from accounts_app.choices import AccountState
from billing_app import organization_selectors


class HtmxHttpRequest(HttpRequest):
    """A request as django-htmx's middleware leaves it."""

    htmx: HtmxDetails


@login_required
def organization(request: HtmxHttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only administrators can see the whole organization.")
    sort = request.GET.get("sort", "-spend")
    query, state, course = request.GET.get("q", "").strip(), request.GET.get("state", ""), request.GET.get("course", "")
    overview = organization_selectors.organization_overview()
    context = {
        "overview": overview,
        "accounts": organization_selectors.organization_accounts(
            sort=sort, query=query, state=state, course=course, page=request.GET.get("page")
        ),
        "sort": sort,
        "query": query,
        "state": state,
        "course": course,
        "states": AccountState.choices,
        "pool": organization_selectors.POOL,
    }
    if request.htmx:
        return render(request, "billing/organization.html#account-table", context)
    return render(request, "billing/organization.html", context)
