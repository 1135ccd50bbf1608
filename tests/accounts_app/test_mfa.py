"""Second factor for the people who hold other people's AWS accounts, and sign-in rate limits."""

from __future__ import annotations

import importlib
import json
import re
import time
from urllib.parse import urlencode

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import (
    SECRET_SESSION_KEY,
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.apps import apps as django_apps
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from accounts_app.crypto import MFA_PURPOSE, decrypt
from tests.factories import PASSWORD, UserFactory
from tests.support.sessions import sign_in_with_second_factor

INVALID_LOGIN = "The email address and/or password you specified are not correct."
TOO_MANY_FAILURES = "Too many failed login attempts. Try again later."


@pytest.fixture
def mfa_required(settings):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = True


@pytest.fixture
def empty_cache():
    """Rate-limit counters live in the (Redis) cache, which outlives a test: start and end clean."""
    cache.clear()
    yield
    cache.clear()


def activate_url() -> str:
    return reverse("mfa_activate_totp")


def give_totp(user) -> Authenticator:
    return TOTP.activate(user, generate_totp_secret()).instance


# --- The second-factor requirement ----------------------------------------------------------------


@pytest.mark.parametrize("persona", ["instructor", "other_instructor", "admin"])
def test_staff_without_an_authenticator_are_sent_to_set_one_up(personas, mfa_required, persona):
    client = personas.client(persona)

    response = client.get(reverse("courses:list"))

    assert response.status_code == 302
    assert response["Location"] == activate_url()


def test_instructor_without_an_authenticator_cannot_open_any_course_page(personas, mfa_required):
    client = personas.client("instructor")
    course_id = personas.course.pk

    for path in (
        reverse("courses:detail", kwargs={"course_id": course_id}),
        reverse("courses:roster", kwargs={"course_id": course_id}),
        reverse("courses:create"),
    ):
        response = client.get(path)
        assert (response.status_code, response["Location"]) == (302, activate_url()), path
    archive = client.post(reverse("courses:archive", kwargs={"course_id": course_id}))
    assert (archive.status_code, archive["Location"]) == (302, activate_url())
    personas.course.refresh_from_db()
    assert not personas.course.is_archived


def test_instructor_rights_from_an_email_domain_also_require_a_second_factor(db, settings, client, mfa_required):
    settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS = ["faculty.example"]
    client.force_login(UserFactory(email="prof@faculty.example"))

    response = client.get(reverse("courses:list"))

    assert (response.status_code, response["Location"]) == (302, activate_url())


@pytest.mark.parametrize("persona", ["student", "other_student", "ta"])
def test_students_and_tas_are_not_asked_for_a_second_factor(personas, mfa_required, persona):
    client = personas.client(persona)

    response = client.get(reverse("courses:list"))

    assert response.status_code == 200


def test_account_pages_stay_reachable_without_a_second_factor(personas, mfa_required):
    client = personas.client("instructor")

    email_page = client.get(reverse("account_email"))
    activate_page = client.get(activate_url())

    assert email_page.status_code == 200
    # Setting up the authenticator asks for the password again first; that page is reachable too.
    assert activate_page.status_code == 302
    assert activate_page["Location"].startswith(reverse("account_reauthenticate"))
    assert client.get(activate_page["Location"]).status_code == 200


def test_health_check_is_not_behind_the_second_factor(personas, mfa_required):
    client = personas.client("admin")

    assert client.get("/healthz").status_code == 200


def test_instructor_with_a_totp_authenticator_gets_through(personas, mfa_required):
    give_totp(personas.instructor)
    client = sign_in_with_second_factor(Client(), personas.instructor)

    response = client.get(reverse("courses:list"))

    assert response.status_code == 200
    assert [c.code for c in response.context["active_courses"]] == ["cs101"]


def test_admin_with_a_totp_authenticator_gets_through(personas, mfa_required):
    give_totp(personas.admin)
    client = sign_in_with_second_factor(Client(), personas.admin)

    assert client.get(reverse("courses:list")).status_code == 200
    assert client.get(reverse("aws_overview")).status_code == 200


def test_without_the_setting_instructors_are_not_asked_for_a_second_factor(personas, settings):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = False

    response = personas.client("instructor").get(reverse("courses:list"))

    assert response.status_code == 200


# Transactional, as in production: allauth announces a new authenticator (and the portal counts
# its code as this session's second factor) once the activation's transaction commits.
@pytest.mark.django_db(transaction=True)
def test_instructor_signs_in_sets_up_totp_and_reaches_the_courses(
    personas, mfa_required, settings, client, empty_cache
):
    # The code is computed here and checked a moment later by the server: allow the neighbouring
    # 30-second period in case the two fall on either side of a boundary.
    settings.MFA_TOTP_TOLERANCE = 1
    signed_in = client.post(reverse("account_login"), {"login": "instructor@school.example", "password": PASSWORD})
    assert signed_in.status_code == 302
    to_courses = client.get(signed_in["Location"])
    assert (to_courses.status_code, to_courses["Location"]) == (302, activate_url())

    # allauth asks for the password again before adding an authenticator.
    asked_again = client.get(activate_url())
    assert asked_again.status_code == 302
    assert asked_again["Location"].startswith(reverse("account_reauthenticate"))
    reauthenticated = client.post(asked_again["Location"], {"password": PASSWORD})
    assert (reauthenticated.status_code, reauthenticated["Location"]) == (302, activate_url())
    setup_page = client.get(activate_url())
    assert setup_page.status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    activated = client.post(activate_url(), {"code": code})

    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=personas.instructor, type=Authenticator.Type.TOTP).exists()
    # The code just typed counts as this session's second factor: it is not asked for again.
    assert client.get(reverse("courses:list")).status_code == 200


# --- The second factor of this session -----------------------------------------------------------


def current_code(secret: str) -> str:
    """What the authenticator app shows now (tests set MFA_TOTP_TOLERANCE = 1, so a code computed
    just before a 30-second boundary is still accepted just after it)."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def second_factor_url(next_path: str) -> str:
    return f"{reverse('mfa_reauthenticate')}?{urlencode({'next': next_path})}"


@pytest.fixture
def totp_tolerance(settings):
    settings.MFA_TOTP_TOLERANCE = 1


@pytest.mark.parametrize("required_for_staff", [True, False])
@pytest.mark.parametrize("persona", ["instructor", "admin", "student"])
def test_a_session_signed_in_without_the_second_factor_is_sent_to_prove_it(
    personas, settings, persona, required_for_staff
):
    """Owning an authenticator is not enough: a session signed in by password alone (here
    force_login, as the Django admin's own sign-in form did) must pass it first."""
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = required_for_staff
    give_totp(getattr(personas, persona))
    client = personas.client(persona)
    detail = reverse("courses:detail", kwargs={"course_id": personas.course.pk})

    for path in (reverse("courses:list"), detail, "/admin/"):
        response = client.get(path)
        assert (response.status_code, response["Location"]) == (302, second_factor_url(path)), path
    archive = client.post(reverse("courses:archive", kwargs={"course_id": personas.course.pk}))
    assert archive.status_code == 302
    personas.course.refresh_from_db()
    assert not personas.course.is_archived


def test_an_htmx_request_without_the_second_factor_sends_the_whole_page_to_prove_it(personas):
    give_totp(personas.instructor)
    client = personas.client("instructor")
    roster = reverse("courses:roster", kwargs={"course_id": personas.course.pk})

    response = client.get(roster, headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{roster}"})

    assert response.status_code == 200
    assert response["HX-Redirect"] == second_factor_url(roster)


def test_typing_the_code_lets_the_session_through(personas, mfa_required, client, empty_cache, totp_tolerance):
    secret = generate_totp_secret()
    TOTP.activate(personas.instructor, secret)
    client.force_login(personas.instructor)
    courses = reverse("courses:list")
    asked = client.get(courses)
    assert asked["Location"] == second_factor_url(courses)
    assert client.get(asked["Location"]).status_code == 200

    wrong = client.post(asked["Location"], {"code": "000000" if current_code(secret) != "000000" else "111111"})
    assert wrong.status_code == 200
    assert client.get(courses).status_code == 302
    passed = client.post(asked["Location"], {"code": current_code(secret)})

    assert (passed.status_code, passed["Location"]) == (302, courses)
    assert client.get(courses).status_code == 200


# --- The Django admin -----------------------------------------------------------------------------


@pytest.mark.parametrize("with_totp", [True, False])
def test_the_admin_sign_in_form_does_not_sign_in_with_a_password(personas, client, empty_cache, with_totp):
    if with_totp:
        give_totp(personas.admin)

    response = client.post(
        reverse("admin:login"),
        {"username": "admin@school.example", "password": PASSWORD, "next": "/admin/"},
    )

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?{urlencode({'next': '/admin/'})}"
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_the_admin_is_reached_through_the_sign_in_and_its_second_factor(personas, client, empty_cache, totp_tolerance):
    secret = generate_totp_secret()
    TOTP.activate(personas.admin, secret)

    to_admin_login = client.get("/admin/")
    to_sign_in = client.get(to_admin_login["Location"])
    assert to_sign_in["Location"] == f"{reverse('account_login')}?{urlencode({'next': '/admin/'})}"
    password_step = client.post(to_sign_in["Location"], {"login": "admin@school.example", "password": PASSWORD})
    assert (password_step.status_code, password_step["Location"]) == (302, reverse("mfa_authenticate"))
    assert "_auth_user_id" not in client.session
    code_step = client.post(reverse("mfa_authenticate"), {"code": current_code(secret)})

    assert (code_step.status_code, code_step["Location"]) == (302, "/admin/")
    assert client.session["_auth_user_id"] == str(personas.admin.pk)
    assert client.get("/admin/").status_code == 200


def test_the_admin_sign_in_page_refuses_someone_signed_in_who_is_not_staff(personas):
    assert personas.client("student").get(reverse("admin:login")).status_code == 403


# --- Authenticator secrets at rest ----------------------------------------------------------------


def stored_text(authenticator: Authenticator) -> str:
    """The authenticator's data as the database holds it."""
    authenticator.refresh_from_db()
    return json.dumps(authenticator.data)


def test_the_totp_secret_and_the_recovery_codes_are_stored_encrypted(db):
    user = UserFactory()
    secret = generate_totp_secret()

    totp = TOTP.activate(user, secret).instance
    recovery = RecoveryCodes.activate(user)

    assert secret not in stored_text(totp)
    assert decrypt(totp.data["secret"], purpose=MFA_PURPOSE) == secret
    # A key of its own: the token means nothing to the one-time secrets' key.
    assert decrypt(totp.data["secret"]) is None
    seed = decrypt(recovery.instance.data["seed"], purpose=MFA_PURPOSE)
    assert re.fullmatch(r"[0-9a-f]{80}", seed)
    assert seed not in stored_text(recovery.instance)
    codes = recovery.generate_codes()
    assert len(codes) == 10
    assert not any(code in stored_text(recovery.instance) for code in codes)
    assert RecoveryCodes(recovery.instance).validate_code(codes[3])


def test_signing_in_with_an_encrypted_totp_secret_works(personas, client, empty_cache, totp_tolerance):
    secret = generate_totp_secret()
    TOTP.activate(personas.instructor, secret)

    client.post(reverse("account_login"), {"login": "instructor@school.example", "password": PASSWORD})
    signed_in = client.post(reverse("mfa_authenticate"), {"code": current_code(secret)})

    assert signed_in.status_code == 302
    assert client.session["_auth_user_id"] == str(personas.instructor.pk)
    assert client.get(reverse("courses:list")).status_code == 200


def test_a_changed_secret_key_keeps_authenticators_working_with_the_old_key_as_fallback(
    db, settings, empty_cache, totp_tolerance
):
    secret = generate_totp_secret()
    totp = TOTP.activate(UserFactory(), secret).instance
    old_key = settings.SECRET_KEY

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-secret-key-" + "x" * 40, [old_key]
    assert TOTP(totp).validate_code(current_code(secret))

    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY_FALLBACKS"):
        TOTP(totp).validate_code(current_code(secret))


def test_the_migration_encrypts_the_secrets_stored_before_it(db, empty_cache, totp_tolerance):
    migration = importlib.import_module("accounts_app.migrations.0007_join_code_limits")
    user = UserFactory()
    secret = generate_totp_secret()
    seed = RecoveryCodes.generate_seed()
    totp = Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": secret})
    recovery = Authenticator.objects.create(
        user=user, type=Authenticator.Type.RECOVERY_CODES, data={"seed": seed, "used_mask": 0}
    )

    migration.encrypt_authenticator_secrets(django_apps, None)

    assert secret not in stored_text(totp)
    assert seed not in stored_text(recovery)
    assert TOTP(totp).validate_code(current_code(secret))
    assert decrypt(recovery.data["seed"], purpose=MFA_PURPOSE) == seed
    migration.decrypt_authenticator_secrets(django_apps, None)
    assert (stored_text(totp), stored_text(recovery)) == (
        json.dumps({"secret": secret}),
        json.dumps({"seed": seed, "used_mask": 0}),
    )


# --- Sign-in rate limits --------------------------------------------------------------------------


def post_login(client, email: str, password: str):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def test_sign_in_is_refused_after_five_wrong_passwords_even_with_the_right_one(personas, client, empty_cache):
    # ACCOUNT_RATE_LIMITS["login_failed"]: 5 failures per address in 5 minutes.
    for attempt in range(1, 6):
        response = post_login(client, "student@school.example", "wrong-password")
        assert response.status_code == 200, attempt
        assert response.context["form"].non_field_errors() == [INVALID_LOGIN], attempt

    refused = post_login(client, "student@school.example", PASSWORD)

    assert refused.status_code == 200
    assert refused.context["form"].non_field_errors() == [TOO_MANY_FAILURES]
    assert "_auth_user_id" not in client.session
    # Another address from the same browser is still allowed to sign in.
    other = post_login(client, "ta@school.example", PASSWORD)
    assert other.status_code == 302
    assert client.session["_auth_user_id"] == str(personas.ta.pk)


def test_sign_in_failures_from_one_ip_are_limited_across_addresses(db, client, empty_cache):
    # ACCOUNT_RATE_LIMITS["login_failed"]: 10 failures per IP address a minute.
    for attempt in range(1, 11):
        response = post_login(client, f"guess{attempt}@school.example", "wrong-password")
        assert response.context["form"].non_field_errors() == [INVALID_LOGIN], attempt

    refused = post_login(client, "guess11@school.example", "wrong-password")

    assert refused.context["form"].non_field_errors() == [TOO_MANY_FAILURES]


def test_repeated_wrong_passwords_end_in_429_too_many_requests(db, client, empty_cache):
    """Past the failure limits, the form keeps refusing; past allauth's limit of 30 sign-in posts
    a minute from one IP address, the page itself answers 429."""
    UserFactory(email="target@school.example")
    statuses = []
    for _ in range(40):
        response = post_login(client, "target@school.example", "wrong-password")
        statuses.append(response.status_code)
        if response.status_code == 429:
            break

    assert statuses == [200] * 30 + [429]
    assert b"Too Many Requests" in response.content
    assert "_auth_user_id" not in client.session
    assert post_login(client, "target@school.example", PASSWORD).status_code == 429
