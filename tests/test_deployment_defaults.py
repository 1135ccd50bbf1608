"""Defaults that cannot go wrong: the demo commands run only against the local emulator, the
compose files start a deployment only with its secrets, or the demo only on this machine, and
production installs only what it runs, each file checked against its hash.
(The settings' own refusals are tested in fresh processes in tests/portal/test_settings.py.)"""

from __future__ import annotations

import ast
import re
import socket
import tomllib
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from accounts_app.choices import AccountState
from accounts_app.models import Course, MemberAccount, User
from portal.aws.emulator import is_loopback
from tests.support.fresh_process import PRODUCTION_ENV, manage

PROJECT = Path(__file__).resolve().parent.parent
LOCAL_EMULATOR = "http://127.0.0.1:5055"


def run(*args: str) -> str:
    stdout = StringIO()
    call_command(*args, stdout=stdout)
    return stdout.getvalue()


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:5055", True),
        ("http://127.8.0.1:5055", True),
        ("http://localhost:5055/", True),
        ("http://[::1]:5000", True),
        ("http://moto:5000", False),
        ("http://localhost.example.com:5055", False),
        ("http://0.0.0.0:5055", False),
        ("https://organizations.us-east-1.amazonaws.com", False),
        ("", False),
    ],
)
def test_only_this_machine_counts_as_the_local_emulator(url, loopback):
    assert is_loopback(url) == loopback


# --- The demo commands ----------------------------------------------------------------------------

ELSEWHERE = [
    pytest.param({}, "AWS_ENDPOINT_URL is not set: this is real AWS, not the local emulator.", id="real-aws"),
    pytest.param(
        {"AWS_ENDPOINT_URL": "http://moto:5000"},
        "AWS_ENDPOINT_URL=http://moto:5000 is not on this machine: only the local emulator is.",
        id="remote-endpoint",
    ),
    pytest.param(
        {
            "AWS_ENDPOINT_URL": LOCAL_EMULATOR,
            "AWS_ENDPOINT_URL_ORGANIZATIONS": "https://organizations.us-east-1.amazonaws.com",
        },
        "AWS_ENDPOINT_URL_ORGANIZATIONS=https://organizations.us-east-1.amazonaws.com is not on this "
        "machine: only the local emulator is.",
        id="one-service-elsewhere",
    ),
]


def point_aws_at(monkeypatch, endpoints: dict[str, str]) -> None:
    for name, value in endpoints.items():
        monkeypatch.setenv(name, value)


@pytest.mark.django_db
@pytest.mark.parametrize(("endpoints", "reason"), ELSEWHERE)
def test_seed_demo_creates_no_one_anywhere_but_on_the_local_emulator(monkeypatch, endpoints, reason):
    point_aws_at(monkeypatch, endpoints)

    with pytest.raises(CommandError) as refused:
        run("seed_demo")

    assert str(refused.value) == f"seed_demo runs only against the local AWS emulator (`make run`): {reason}"
    assert not User.objects.exists()
    assert not Course.objects.exists()


@pytest.mark.django_db
def test_seed_demo_loads_the_demo_on_the_local_emulator(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", LOCAL_EMULATOR)

    output = run("seed_demo")

    assert "Every demo login uses the password: classroom-demo" in output
    assert User.objects.filter(email="admin@demo.example.edu", is_superuser=True).exists()
    assert Course.objects.filter(code="cloud101-demo").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("endpoints", "reason"), ELSEWHERE)
def test_demo_aws_leaves_the_account_records_alone_anywhere_but_on_the_local_emulator(
    personas, monkeypatch, endpoints, reason
):
    """demo_aws starts by forgetting every account record (the emulator's are gone): on a real
    installation that would lose track of every student's account."""
    account = MemberAccount.objects.create(
        course=personas.course,
        state=AccountState.READY,
        account_name="cs101-student",
        root_email="aws+cs101-student@school.example.edu",
        aws_account_id="111111111111",
    )
    point_aws_at(monkeypatch, endpoints)

    with pytest.raises(CommandError) as refused:
        run("demo_aws")

    assert str(refused.value) == f"demo_aws runs only against the local AWS emulator (`make run`): {reason}"
    assert MemberAccount.objects.filter(pk=account.pk, state=AccountState.READY).exists()


@pytest.mark.django_db
def test_demo_aws_waits_for_the_emulator_to_run(monkeypatch):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")

    assert "The emulator is not running" in run("demo_aws")


@pytest.mark.parametrize(("endpoints", "reason"), ELSEWHERE)
def test_aws_bootstrap_creates_an_organization_only_on_the_local_emulator(monkeypatch, endpoints, reason):
    point_aws_at(monkeypatch, endpoints)

    with pytest.raises(CommandError) as refused:
        run("aws_bootstrap", "--create-organization")

    assert str(refused.value) == f"--create-organization is for the local AWS emulator only: {reason}"


# --- The compose files ----------------------------------------------------------------------------


def compose(name: str) -> dict:
    return yaml.safe_load((PROJECT / name).read_text())


def published_ports(services: dict) -> list[str]:
    return [port for service in services.values() for port in service.get("ports", [])]


def commands(services: dict) -> str:
    return " ".join(str(service.get("command", "")) for service in services.values())


PORTAL_SERVICES = ("web", "worker", "beat")


def test_the_deployment_compose_file_is_production_with_required_secrets_and_no_demo():
    deployment = compose("docker-compose.yml")
    services = deployment["services"]
    environment = deployment["x-portal"]["environment"]

    assert published_ports(services) == ["127.0.0.1:8000:8000"]
    assert environment["PORTAL_ENV"] == "production"
    for required in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "PORTAL_BASE_URL", "EMAIL_HOST"):
        assert re.fullmatch(rf"\$\{{{required}:\?[^}}]+\}}", environment[required]), required
    assert re.search(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", environment["DATABASE_URL"])
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    assert not any(name.startswith("AWS_") for name in environment)
    assert "seed_demo" not in commands(services) and "demo_aws" not in commands(services)
    assert "emulator" not in commands(services) and "moto" not in yaml.safe_dump(services)
    assert set(PORTAL_SERVICES) <= set(services)


def interpolated(value: str, given: dict[str, str]) -> str:
    """${NAME:?message} and ${NAME:-default} as Compose reads them, with `given` as the shell."""

    def one(match: re.Match) -> str:
        name, operator, rest = match.groups()
        if name in given:
            return given[name]
        assert operator == ":-", f"{name} is required"
        return rest

    return re.sub(r"\$\{([A-Z_]+)(:\?|:-)([^}]*)\}", one, value)


def test_the_deployment_compose_environment_passes_the_deployment_checks(tmp_path):
    environment = compose("docker-compose.yml")["x-portal"]["environment"]
    secrets_given = {
        name: PRODUCTION_ENV[name] for name in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "EMAIL_HOST")
    } | {"POSTGRES_PASSWORD": "S3cretPassw0rd", "PORTAL_BASE_URL": "https://portal.example.edu"}
    env = {name: interpolated(str(value), secrets_given) for name, value in environment.items()}

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env | {"PORTAL_VAR_DIR": str(tmp_path)})

    assert result.returncode == 0, result.stderr


def test_the_demo_compose_file_stays_on_this_machine_with_the_local_emulator():
    demo = compose("docker-compose.demo.yml")
    services = demo["services"]
    portal = demo["x-portal"]

    assert published_ports(services) == ["127.0.0.1:8000:8000"]
    assert is_loopback(portal["environment"]["AWS_ENDPOINT_URL"])
    assert portal["network_mode"] == "service:aws"
    # The emulator listens on loopback, at the address the portal's containers are given.
    assert services["aws"]["command"] == ["python", "-m", "devtools.emulator.server", "-H", "127.0.0.1", "-p", "5055"]
    assert portal["environment"]["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5055"
    assert all(services[name].get("network_mode", portal["network_mode"]) == "service:aws" for name in PORTAL_SERVICES)
    assert "seed_demo" in services["web"]["command"] and "demo_aws" in services["demo-aws"]["command"]


def test_the_dockerfile_builds_no_secret_and_no_demo_into_the_image():
    dockerfile = (PROJECT / "Dockerfile").read_text()

    assert "DJANGO_SECRET_KEY" not in "".join(line for line in dockerfile.splitlines() if line.startswith("ENV"))
    assert "seed_demo" not in dockerfile


# --- What each install holds ----------------------------------------------------------------------


def locked(name: str) -> dict[str, tuple[str, frozenset[str]]]:
    """requirements/<name>: each package's version and the hashes its files may have."""
    text = (PROJECT / "requirements" / name).read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        if match := re.match(r"([A-Za-z0-9._-]+)==(\S+)", line):
            package = re.sub(r"[-_.]+", "-", match[1]).lower()
            pins[package] = (match[2], frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", line)))
    return pins


def declared(*groups: str) -> set[str]:
    """The packages pyproject.toml names: its dependencies, or those of the optional groups."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    specifiers = (
        project["dependencies"]
        if not groups
        else [specifier for group in groups for specifier in project["optional-dependencies"][group]]
    )
    return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", s)[0]).lower() for s in specifiers}


def dockerfile_stages() -> list[tuple[str, str, str]]:
    """(name, the image it starts from, its instructions) for each stage, in order."""
    stages = []
    for stage in re.split(r"^(?=FROM )", (PROJECT / "Dockerfile").read_text(), flags=re.M)[1:]:
        start = re.match(r"FROM (\S+)(?: AS (\S+))?", stage)
        stages.append((start[2] or "", start[1], stage))
    return stages


def test_every_locked_package_is_pinned_with_its_hashes():
    for name in ("base.txt", "dev.txt"):
        pins = locked(name)
        assert pins, name
        assert all(hashes for _, hashes in pins.values()), name


def test_the_runtime_lock_holds_the_runtime_and_no_development_tool():
    runtime = locked("base.txt")
    development_only = declared("dev", "test") - declared()

    assert declared() <= set(runtime)
    assert {"moto", "pytest", "honcho", "playwright"} <= development_only
    assert not development_only & set(runtime)


def test_development_installs_the_runtime_at_its_very_versions_and_hashes():
    runtime, development = locked("base.txt"), locked("dev.txt")

    assert {package: development.get(package) for package in runtime} == runtime
    assert declared("dev", "test") <= set(development)


def test_the_image_installs_the_runtime_alone_and_the_demo_adds_development():
    stages = {name: (base, text) for name, base, text in dockerfile_stages()}
    default_image = dockerfile_stages()[-1]  # what `docker build .` and docker-compose.yml build
    chain, base = [], default_image[1]
    while base in stages:
        chain.append(stages[base][1])
        base = stages[base][0]
    installs = " ".join([*chain, default_image[2]])

    assert "-r requirements/base.txt" in installs and "dev.txt" not in installs
    # Its sources come without the development package, which only the demo adds back.
    assert "COPY --from=sources " in installs and "COPY . " not in installs
    assert re.search(r"^RUN rm -r .*/app/devtools\b", stages["sources"][1], flags=re.M)
    assert "--require-hashes -r requirements/dev.txt" in stages["demo"][1]
    assert "COPY devtools/ devtools/" in stages["demo"][1]
    assert "target" not in str(compose("docker-compose.yml")["x-portal"]["build"])
    demo = compose("docker-compose.demo.yml")
    for service in [demo["x-portal"], demo["services"]["aws"]]:
        assert service["build"] == {"context": ".", "target": "demo"}


def test_nothing_production_runs_imports_a_development_requirement():
    """The image has the runtime lock only: a module of the portal importing moto (the emulator is
    devtools/'s) or a test tool would fail there."""
    development_only = {name.replace("-", "_") for name in declared("dev", "test") - declared()}
    imports = set()
    for package in ("portal", "accounts_app", "billing_app"):
        for module in (PROJECT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.Import):
                    imports |= {(module, alias.name.split(".")[0]) for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imports.add((module, node.module.split(".")[0]))

    assert "moto" in development_only
    assert {(str(module), name) for module, name in imports if name in development_only} == set()
