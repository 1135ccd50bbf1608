"""The portal's settings as a fresh process sees them: manage.py run with a given environment and
nothing of the test's own."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
# What a production deployment sets, the secrets new for each run.
PRODUCTION_ENV = {
    "PORTAL_ENV": "production",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "portal.example.edu",
    "DATABASE_URL": "postgres://portal@db.example.edu/portal",
    "REDIS_URL": "redis://cache.example.edu:6379/0",
    "EMAIL_HOST": "smtp.example.edu",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`manage.py <args>` in a new process that sees `env` and none of this shell's settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PORTAL_", "AWS_ENDPOINT_URL"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
