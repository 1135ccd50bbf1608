"""Shared plumbing for benchmarks: a throw-away test database, and writing figures into
docs/BENCHMARKS.md between `<!-- begin NAME -->` and `<!-- end NAME -->` markers."""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "BENCHMARKS.md"


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


@contextmanager
def test_database() -> Iterator[None]:
    """Run against a fresh `test_…` database so that benchmarks never touch real data."""
    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    setup_test_environment()
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(old_config, verbosity=0)
        teardown_test_environment()


def machine() -> str:
    from django.db import connection

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    database = f"{connection.vendor} {connection.Database.__name__}"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            database = f"PostgreSQL {cursor.fetchone()[0]}"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, {database}"
    )


def record(name: str, title: str, markdown: str, *, measured_on: str) -> None:
    """Replace this benchmark's section of docs/BENCHMARKS.md with fresh figures.
    `measured_on` is machine(), taken while the database is still there."""
    body = (
        f"<!-- begin {name} -->\n## {title} (`bench/{name}.py`)\n\n"
        f"_Measured {date.today():%Y-%m-%d} on {measured_on}._\n\n"  # noqa: DTZ011 (the machine's own day)
        f"{markdown.strip()}\n<!-- end {name} -->"
    )
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else f"{text.rstrip()}\n\n{body}\n"
    REPORT.write_text(text)
    print(markdown)
