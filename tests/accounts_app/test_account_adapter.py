"""PortalAccountAdapter (accounts_app/account_adapter.py): with PORTAL_STUDENT_PASSWORDS off,
students sign in only through their university's provider; staff keep their password."""

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse

from accounts_app.account_adapter import STUDENT_PASSWORD_REFUSED
from tests.factories import PASSWORD


def sign_in_with_password(user) -> tuple[Client, object]:
    client = Client()
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD}, follow=True)
    return client, response


@pytest.mark.parametrize("persona", ["student", "other_student"])
def test_a_students_password_is_refused_when_student_passwords_are_off(personas, settings, persona):
    settings.PORTAL_STUDENT_PASSWORDS = False

    client, response = sign_in_with_password(getattr(personas, persona))

    assert response.redirect_chain[-1][0] == reverse("account_login")
    assert STUDENT_PASSWORD_REFUSED in response.content.decode()
    assert SESSION_KEY not in client.session


@pytest.mark.parametrize("persona", ["instructor", "ta", "admin"])
def test_staff_keep_their_password_when_student_passwords_are_off(personas, settings, persona):
    settings.PORTAL_STUDENT_PASSWORDS = False

    client, response = sign_in_with_password(getattr(personas, persona))

    assert response.redirect_chain[-1][0] == reverse("courses:list")
    assert str(client.session[SESSION_KEY]) == str(getattr(personas, persona).pk)


def test_students_sign_in_with_their_password_by_default(personas):
    client, response = sign_in_with_password(personas.student)

    assert response.redirect_chain[-1][0] == reverse("courses:list")
    assert str(client.session[SESSION_KEY]) == str(personas.student.pk)


def test_a_wrong_password_says_nothing_of_student_passwords(personas, settings):
    """The refusal comes only after the password is right: it tells nobody who is a student."""
    settings.PORTAL_STUDENT_PASSWORDS = False

    response = Client().post(reverse("account_login"), {"login": personas.student.email, "password": "wrong"})

    assert STUDENT_PASSWORD_REFUSED not in response.content.decode()
    assert "The email address and/or password you specified are not correct." in response.content.decode()
