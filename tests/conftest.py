import os
from dataclasses import dataclass

import pytest
from django.test import Client

from accounts_app.choices import CourseRole
from accounts_app.models import Course, User
from devtools.emulator.server import (
    answer_listings_moto_lacks,
    honour_managed_policy_paths,
    list_no_service_specific_credentials,
)
from portal.celery import app as celery_app
from tests.factories import CourseFactory, MembershipFactory, UserFactory
from tests.support.aws_calls import keep_requests_on_this_machine
from tests.support.aws_script import AwsScript

# Tests never reach AWS, whatever the shell they run in says: no endpoint (moto intercepts the
# real AWS addresses in process), no profile, and credentials that open nothing.
for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "PORTAL_AWS_MANAGEMENT_ROLE_ARN"):
    os.environ.pop(name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    # moto's stock AMIs come with snapshots it reports as the member account's own: cleanup
    # would find hundreds of them in every region.
    MOTO_EC2_LOAD_DEFAULT_AMIS="false",
)
# As AWS, attach managed policies that live under a path (the TAs' job-function/ViewOnlyAccess).
honour_managed_policy_paths()
# As AWS, answer that a user has no service-specific credentials (moto cannot list any).
list_no_service_specific_credentials()
# As an account without them, list the SageMaker Studio apps and ElastiCache serverless caches
# moto does not serve.
answer_listings_moto_lacks()


@pytest.fixture(autouse=True, scope="session")
def no_request_leaves_this_machine():
    """Any AWS request that moto, a Stubber or a test's own hook does not answer fails at once,
    naming the operation and the address, unless it is for an emulator on this machine (the
    browser and reliability tests' moto server): see `keep_requests_on_this_machine`."""
    with pytest.MonkeyPatch.context() as patch:
        keep_requests_on_this_machine(patch)
        yield


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hashing at production strength costs seconds per user; tests need no such cost."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def celery_runs_tasks_inline():
    """Tasks run in the test process, after the transaction that queued them commits."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False


@dataclass
class Personas:
    """One course seen by everyone who might look at it, and a second course next door."""

    course: Course
    other_course: Course
    instructor: User
    ta: User
    student: User
    other_instructor: User
    other_student: User
    admin: User

    def client(self, persona: str) -> Client:
        client = Client()
        if persona != "anonymous":
            client.force_login(getattr(self, persona))
        return client


@pytest.fixture
def personas(db) -> Personas:
    course = CourseFactory(code="cs101", name="Cloud Computing")
    other_course = CourseFactory(code="bio200", name="Bioinformatics on AWS")
    # Fixed names, not random ones: rosters sort by name, and a test's expected order must not
    # depend on what Faker picked for this run.
    people = {
        "instructor": (course, CourseRole.INSTRUCTOR, "Ines Instructor"),
        "ta": (course, CourseRole.TA, "Theo Assistant"),
        "student": (course, CourseRole.STUDENT, "Stella Student"),
        "other_instructor": (other_course, CourseRole.INSTRUCTOR, "Otto Instructor"),
        "other_student": (other_course, CourseRole.STUDENT, "Olga Student"),
    }
    users = {}
    for persona, (persona_course, role, name) in people.items():
        user = UserFactory(email=f"{persona}@school.example", name=name, is_instructor=role == CourseRole.INSTRUCTOR)
        MembershipFactory(course=persona_course, user=user, role=role)
        users[persona] = user
    admin = UserFactory(email="admin@school.example", is_staff=True, is_superuser=True)
    return Personas(course=course, other_course=other_course, admin=admin, **users)


@pytest.fixture
def aws(settings):
    """An emulated AWS organization (moto, in process) set up by aws_bootstrap, with AWS's
    creation quotas raised so that tests do not wait for the rate limit."""
    from moto import mock_aws

    from accounts_app.services.bootstrap import aws_bootstrap
    from portal.aws import session

    settings.PORTAL_AWS_CREATE_ACCOUNT_RATE = 1000
    settings.PORTAL_AWS_CREATE_ACCOUNT_BURST = 1000
    settings.PORTAL_AWS_MAX_CREATIONS_IN_PROGRESS = 1000
    # moto finishes a creation in its first answer: the vending queue looks at it at once.
    settings.PORTAL_AWS_CREATION_SECONDS = 0
    settings.PORTAL_AWS_CLOSE_ACCOUNT_INTERVAL = 0
    # Two regions prove cleanup goes region by region; all thirty would only be slower.
    settings.PORTAL_CLEANUP_REGIONS = ["us-east-1", "eu-west-1"]
    with mock_aws():
        session.reset()
        session.client("organizations").create_organization(FeatureSet="ALL")
        aws_bootstrap(actor=None)
        yield session
        session.reset()


@pytest.fixture
def script(aws) -> AwsScript:
    """AWS's real answers, scripted call by call on top of the `aws` fixture's moto
    (tests/support/aws_script.py)."""
    return AwsScript(aws)


@pytest.fixture
def cost_explorer():
    """moto for Cost Explorer alone: no organization is needed to sync costs. Its answers are
    seeded with tests/support/cost_explorer.py."""
    from moto import mock_aws

    from portal.aws import session

    with mock_aws():
        session.reset()
        yield session
        session.reset()
