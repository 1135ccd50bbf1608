"""The settings module as a fresh process sees it: production refuses to start without its
secrets, and passes Django's deployment checks once they are given."""

import secrets

import pytest

from tests.support.fresh_process import PRODUCTION_ENV, manage


def test_production_settings_pass_the_deployment_checks():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"])
def test_production_refuses_to_start_without_a_secret(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}

    result = manage("check", env=env)

    assert result.returncode != 0
    assert f"{missing} must be set when PORTAL_ENV=production." in result.stderr


def test_development_starts_with_no_environment_at_all(tmp_path):
    result = manage("check", env={"PORTAL_VAR_DIR": str(tmp_path)})

    assert result.returncode == 0, result.stderr


def test_an_unknown_environment_name_is_refused():
    result = manage("check", env={"PORTAL_ENV": "staging"})

    assert result.returncode != 0
    assert "PORTAL_ENV must be 'development' or 'production'." in result.stderr


def test_production_static_files_collect_into_a_manifest(tmp_path):
    """WhiteNoise's manifest storage refuses a file that names another one it cannot find (a
    vendored script pointing at a source map, say): production would then answer every page
    with an error. The Dockerfile runs exactly this at build time."""
    result = manage("collectstatic", "--no-input", env=PRODUCTION_ENV | {"PORTAL_VAR_DIR": str(tmp_path)})

    assert result.returncode == 0, result.stderr
    manifest = (tmp_path / "static" / "staticfiles.json").read_text()
    assert "vendor/chartjs-4.6.1/chart.umd.min.js" in manifest
    assert "css/portal.css" in manifest


# --- Defaults that cannot go wrong ----------------------------------------------------------------

DEVELOPMENT_KEY_REFUSED = "DJANGO_SECRET_KEY must be set to a secret of your own whenever DJANGO_DEBUG is off"


def test_development_refuses_its_public_secret_key_once_debug_is_off(tmp_path):
    result = manage("check", env={"PORTAL_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "false"})

    assert result.returncode != 0
    assert DEVELOPMENT_KEY_REFUSED in result.stderr


def test_development_with_debug_off_starts_with_a_secret_key_of_its_own(tmp_path):
    env = {"PORTAL_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}

    result = manage("check", env=env)

    assert result.returncode == 0, result.stderr


def test_production_refuses_the_development_secret_key():
    env = PRODUCTION_ENV | {"DJANGO_SECRET_KEY": "development-only-secret-key-never-use-in-production"}

    result = manage("check", env=env)

    assert result.returncode != 0
    assert DEVELOPMENT_KEY_REFUSED in result.stderr


def test_production_refuses_debug():
    result = manage("check", env=PRODUCTION_ENV | {"DJANGO_DEBUG": "true"})

    assert result.returncode != 0
    assert "DJANGO_DEBUG must be off when PORTAL_ENV=production" in result.stderr


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ORGANIZATIONS"])
def test_production_refuses_an_aws_emulator(variable):
    result = manage("check", env=PRODUCTION_ENV | {variable: "http://127.0.0.1:5055"})

    assert result.returncode != 0
    assert (
        f"{variable} must not be set when PORTAL_ENV=production: an endpoint URL points the portal "
        "at an AWS emulator instead of AWS."
    ) in result.stderr


def test_the_staff_idle_timeout_must_be_a_minute_or_more(tmp_path):
    result = manage("check", env={"PORTAL_VAR_DIR": str(tmp_path), "PORTAL_STAFF_IDLE_TIMEOUT_MINUTES": "0"})

    assert result.returncode != 0
    assert "PORTAL_STAFF_IDLE_TIMEOUT_MINUTES must be a whole number of minutes, 1 or more." in result.stderr
