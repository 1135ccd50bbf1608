from django.http import HttpRequest

from accounts_app.choices import AccountState
from accounts_app.permissions import can_create_courses


def site_roles(request: HttpRequest) -> dict:
    return {"can_create_courses": lambda: can_create_courses(request.user)}


def account_states(request: HttpRequest) -> dict:
    """Templates compare an account's state with AccountState's members, never with literals."""
    return {"AccountState": AccountState}
