"""Courses in the browser: creating, validating, editing, archiving, the join code and the
audit log."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.test import RequestFactory
from django.urls import reverse

from accounts_app.choices import AuditAction, CourseRole, InviteStatus, MembershipSource
from accounts_app.forms import CourseForm
from accounts_app.models import AuditEvent, Course, Membership
from accounts_app.services.audit import audit_record
from accounts_app.views.common import managed_course
from portal.aws.catalog import instance_family_price_class, service_price_class
from tests.factories import UserFactory, browser_form_data

APPEND_ONLY = "The audit log is append-only."
ARCHIVED_REFUSAL = "This course is archived. Restore it before making changes."
JOIN_CODE_PATTERN = re.compile(r"^[A-HJ-KM-NP-Z2-9]{4}-[A-HJ-KM-NP-Z2-9]{4}$")


@pytest.fixture(autouse=True)
def fast_test_settings(settings):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = False


def new_course_data(**overrides) -> dict:
    typed = {
        "name": "Serverless Systems",
        "code": "CS205",
        "term": "Spring 2027",
        "start_date": "2027-01-15",
        "end_date": "2027-05-01",
        "description": "Functions, queues and event buses.",
        "budget_per_student": "75.50",
        "access_mode": "identity_center",
        "end_policy": "recycle",
        "allowed_regions": ["us-west-2", "us-east-1"],
        "allowed_services": "s3, Lambda ec2;lambda",
        "billing_contact_email": "billing@school.example",
        "usage_alert_email": "alerts@school.example",
    }
    return browser_form_data(CourseForm(), **{**typed, **overrides})


def edit_data(course: Course, **overrides) -> dict:
    """The settings form of `course` submitted as the browser shows it."""
    return browser_form_data(CourseForm(instance=course), **overrides)


def course_events(course: Course, action: AuditAction) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(course=course, action=action).order_by("pk"))


# --- Creating a course ----------------------------------------------------------------------------


def test_site_instructor_creates_a_course_and_becomes_its_first_instructor(personas):
    client = personas.client("instructor")

    response = client.post(reverse("courses:create"), new_course_data())

    course = Course.objects.get(code="cs205")
    assert response.status_code == 302
    assert response["Location"] == reverse("courses:roster", kwargs={"course_id": course.pk})
    assert course.name == "Serverless Systems"
    assert course.start_date == date(2027, 1, 15)
    assert course.budget_per_student == Decimal("75.50")
    assert course.allowed_regions == ["us-east-1", "us-west-2"]
    assert course.allowed_services == ["ec2", "lambda", "s3"]
    assert course.created_by == personas.instructor
    assert course.join_code is None and course.archived_at is None

    member = Membership.objects.get(course=course)
    assert (member.user, member.email, member.role) == (
        personas.instructor,
        "instructor@school.example",
        CourseRole.INSTRUCTOR,
    )
    assert member.invite_status == InviteStatus.ACCEPTED
    assert member.source == MembershipSource.MANUAL

    [event] = AuditEvent.objects.filter(course=course)
    assert event.action == AuditAction.COURSE_CREATED
    assert event.actor == personas.instructor
    assert event.actor_label == "instructor@school.example"
    assert (event.object_type, event.object_id) == ("course", str(course.pk))
    assert event.summary == ("Created course cs205 (Serverless Systems) with instructor instructor@school.example")


def test_a_new_course_allows_only_small_instance_families_and_cheap_services(personas):
    """Until the instructor opts in: no GPU, no large family, no service that costs by the hour
    beyond EC2 itself."""
    client = personas.client("instructor")

    client.post(
        reverse("courses:create"),
        browser_form_data(
            CourseForm(),
            **{
                key: value
                for key, value in new_course_data().items()
                if key not in {"allowed_services", "allowed_instance_families"}
            },
        ),
    )

    course = Course.objects.get(code="cs205")
    assert course.allowed_instance_families == ["t3", "t3a", "t4g"]
    assert course.allowed_services == ["cloudformation", "cloudwatch", "dynamodb", "ec2", "iam", "lambda", "logs", "s3"]
    assert {instance_family_price_class(family) for family in course.allowed_instance_families} == {"$"}
    assert "$$$" not in {service_price_class(service) for service in course.allowed_services}


def test_the_new_course_form_shows_the_price_class_of_what_it_allows(personas):
    page = personas.client("instructor").get(reverse("courses:create")).content.decode()

    families = re.search(r'id="family-price-classes">(.*?)</p>', page, re.DOTALL).group(1)
    assert re.findall(r"<span>(\S+) <strong>([^<]+)</strong></span>", families) == [
        ("t3", "$"),
        ("t3a", "$"),
        ("t4g", "$"),
    ]
    services = re.search(r'id="service-price-classes">(.*?)</p>', page, re.DOTALL).group(1)
    assert "<span>ec2 <strong>$$</strong></span>" in services
    assert "<span>s3 <strong>$</strong></span>" in services
    assert "approximate on-demand prices, us-east-1" in page
    assert 'id="every-instance-type"' not in page


def test_opting_in_to_a_gpu_family_and_a_costly_service_shows_their_class(personas):
    """An invalid form is shown again with what was typed, priced."""
    response = personas.client("instructor").post(
        reverse("courses:create"),
        new_course_data(allowed_instance_families="t3, g5, p4d, zz9", allowed_services="ec2 sagemaker", name=""),
    )

    assert response.status_code == 200
    assert response.context["form"].price_classes()["instance_families"] == [
        ("t3", "$"),
        ("g5", "$$$ GPU"),
        ("p4d", "$$$ GPU"),
        ("zz9", "?"),
    ]
    assert ("sagemaker", "$$$") in response.context["form"].price_classes()["services"]
    assert "<span>g5 <strong>$$$ GPU</strong></span>" in response.content.decode()


def test_an_empty_instance_family_list_still_means_every_type_and_says_so(personas):
    """Existing courses keep their meaning; the form warns in words what it is."""
    client = personas.client("instructor")
    course = personas.course
    Course.objects.filter(pk=course.pk).update(allowed_instance_families=[])
    course.refresh_from_db()

    page = client.get(reverse("courses:edit", kwargs={"course_id": course.pk})).content.decode()
    assert 'id="every-instance-type"' in page
    assert "students may start EVERY instance type, GPU instances included" in page

    response = client.post(
        reverse("courses:edit", kwargs={"course_id": course.pk}), edit_data(course, name="Cloud Computing II")
    )
    assert response.status_code == 302
    course.refresh_from_db()
    assert course.allowed_instance_families == []


def test_created_course_shows_its_success_message_on_the_roster(personas):
    client = personas.client("instructor")

    response = client.post(reverse("courses:create"), new_course_data(), follow=True)

    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == ["Created cs205. Next, add people to the roster."]


@pytest.mark.parametrize("persona", ["student", "ta"])
def test_user_who_is_not_an_instructor_cannot_create_a_course(personas, persona):
    client = personas.client(persona)

    page = client.get(reverse("courses:create"))
    post = client.post(reverse("courses:create"), new_course_data())

    assert page.status_code == 403
    assert post.status_code == 403
    assert not Course.objects.filter(code="cs205").exists()
    assert not AuditEvent.objects.filter(action=AuditAction.COURSE_CREATED).exists()


def test_verified_address_at_an_instructor_domain_may_create_courses(db, settings, client):
    settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS = ["Faculty.Example"]
    professor = UserFactory(email="prof@faculty.example", is_instructor=False)
    client.force_login(professor)

    page = client.get(reverse("courses:create"))
    response = client.post(reverse("courses:create"), new_course_data())

    assert page.status_code == 200
    assert response.status_code == 302
    course = Course.objects.get(code="cs205")
    assert course.memberships.get().user == professor
    assert course.memberships.get().role == CourseRole.INSTRUCTOR


@pytest.mark.parametrize(
    ("email", "verified"),
    [
        ("prof@faculty.example", False),  # the right domain, never confirmed
        ("prof@notfaculty.example", True),  # a domain that only ends the same way
        ("prof@faculty.example.evil.test", True),  # a domain that only starts the same way
    ],
)
def test_instructor_domain_does_not_grant_rights_to_other_addresses(db, settings, client, email, verified):
    settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS = ["faculty.example"]
    client.force_login(UserFactory(email=email, verified=verified))

    response = client.post(reverse("courses:create"), new_course_data())

    assert response.status_code == 403
    assert not Course.objects.filter(code="cs205").exists()


def test_instructor_domain_grants_nothing_when_the_setting_is_empty(db, settings, client):
    settings.PORTAL_INSTRUCTOR_EMAIL_DOMAINS = []
    client.force_login(UserFactory(email="prof@faculty.example"))

    assert client.get(reverse("courses:create")).status_code == 403


# --- Validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"start_date": "2027-05-01", "end_date": "2027-04-30"},
            "end_date",
            "The course must end on or after its start date.",
        ),
        (
            {"budget_per_student": "0"},
            "budget_per_student",
            "The budget per student must be more than $0.",
        ),
        (
            {"budget_per_student": "-25.00"},
            "budget_per_student",
            "The budget per student must be more than $0.",
        ),
        (
            {"allowed_regions": ["us-east-1", "mars-north-1"]},
            "allowed_regions",
            "Select a valid choice. mars-north-1 is not one of the available choices.",
        ),
        (
            {"allowed_services": "ec2, s3, teleportation"},
            "allowed_services",
            "Unknown AWS service(s): teleportation. Use the prefix of IAM actions, e.g. ec2, s3.",
        ),
        (
            {"billing_contact_email": "billing-at-school"},
            "billing_contact_email",
            "Enter a valid email address.",
        ),
        (
            {"usage_alert_email": "alerts@"},
            "usage_alert_email",
            "Enter a valid email address.",
        ),
        ({"code": "cs101"}, "code", "Course with this Code already exists."),
        ({"code": "CS101"}, "code", "Course with this Code already exists."),
    ],
    ids=[
        "end-before-start",
        "zero-budget",
        "negative-budget",
        "unknown-region",
        "unknown-service",
        "invalid-billing-email",
        "invalid-alert-email",
        "duplicate-code",
        "duplicate-code-other-case",
    ],
)
def test_course_form_names_the_field_in_error(personas, overrides, field, message):
    client = personas.client("instructor")
    courses_before = set(Course.objects.values_list("pk", flat=True))

    response = client.post(reverse("courses:create"), new_course_data(**overrides))

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [message]}
    html = response.content.decode()
    assert f'<p class="error" role="alert">{message}</p>' in html
    assert set(Course.objects.values_list("pk", flat=True)) == courses_before
    assert not AuditEvent.objects.filter(action=AuditAction.COURSE_CREATED).exists()


def test_editing_to_another_courses_code_is_refused(personas):
    client = personas.client("instructor")
    course = personas.course

    response = client.post(reverse("courses:edit", kwargs={"course_id": course.pk}), edit_data(course, code="bio200"))

    assert response.status_code == 200
    assert response.context["form"].errors == {"code": ["Course with this Code already exists."]}
    course.refresh_from_db()
    assert course.code == "cs101"


# --- Editing --------------------------------------------------------------------------------------


def test_editing_records_the_changed_fields_with_old_and_new_values(personas):
    client = personas.client("instructor")
    course = personas.course

    response = client.post(
        reverse("courses:edit", kwargs={"course_id": course.pk}),
        edit_data(course, name="Cloud Computing II", budget_per_student="150.00", end_date="2026-12-20"),
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("courses:detail", kwargs={"course_id": course.pk})
    course.refresh_from_db()
    assert course.name == "Cloud Computing II"
    assert course.budget_per_student == Decimal("150.00")
    assert course.end_date == date(2026, 12, 20)

    [event] = course_events(course, AuditAction.COURSE_UPDATED)
    assert event.actor == personas.instructor
    assert event.summary == "Edited name, end date, budget per student (USD)"
    assert event.data == {
        "changes": {
            "name": ["Cloud Computing", "Cloud Computing II"],
            "end_date": ["2026-12-15", "2026-12-20"],
            "budget_per_student": ["100.00", "150.00"],
        }
    }


def test_editing_the_guardrails_records_the_lists_before_and_after(personas):
    client = personas.client("admin")
    course = personas.course

    client.post(
        reverse("courses:edit", kwargs={"course_id": course.pk}),
        edit_data(course, allowed_services="s3 lambda ec2", allowed_regions=["eu-west-1"]),
    )

    [event] = course_events(course, AuditAction.COURSE_UPDATED)
    assert event.actor_label == "admin@school.example"
    assert event.data["changes"]["allowed_regions"] == [["us-east-1"], ["eu-west-1"]]
    assert event.data["changes"]["allowed_services"] == [["ec2", "s3"], ["ec2", "lambda", "s3"]]


def test_saving_unchanged_settings_writes_no_audit_event(personas):
    client = personas.client("instructor")
    course = personas.course

    response = client.post(reverse("courses:edit", kwargs={"course_id": course.pk}), edit_data(course))

    assert response.status_code == 302
    assert course_events(course, AuditAction.COURSE_UPDATED) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"allowed_services": "s3 ec2"},  # the same services, typed in another order
        {"allowed_services": "EC2, S3, ec2"},  # the same services, other case, one twice
        {"code": "CS101"},  # the same code in capitals
    ],
    ids=["services-reordered", "services-recased", "code-recased"],
)
def test_retyping_a_value_the_same_way_is_not_recorded_as_a_change(personas, overrides):
    client = personas.client("instructor")
    course = personas.course

    response = client.post(
        reverse("courses:edit", kwargs={"course_id": course.pk}),
        edit_data(course, name="Cloud Computing II", **overrides),
    )

    assert response.status_code == 302
    [event] = course_events(course, AuditAction.COURSE_UPDATED)
    assert event.summary == "Edited name"
    assert event.data == {"changes": {"name": ["Cloud Computing", "Cloud Computing II"]}}


def test_invalid_edit_changes_nothing(personas):
    client = personas.client("instructor")
    course = personas.course

    response = client.post(
        reverse("courses:edit", kwargs={"course_id": course.pk}),
        edit_data(course, name="Renamed", budget_per_student="0"),
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"budget_per_student": ["The budget per student must be more than $0."]}
    course.refresh_from_db()
    assert course.name == "Cloud Computing"
    assert course_events(course, AuditAction.COURSE_UPDATED) == []


# --- Archiving ------------------------------------------------------------------------------------


def test_archiving_makes_the_course_read_only_and_restoring_undoes_it(personas):
    client = personas.client("instructor")
    course = personas.course
    edit_url = reverse("courses:edit", kwargs={"course_id": course.pk})
    archive_url = reverse("courses:archive", kwargs={"course_id": course.pk})

    archived = client.post(archive_url, follow=True)

    course.refresh_from_db()
    assert course.is_archived
    assert [str(m) for m in archived.context["messages"]] == ["Archived cs101. It is read-only until restored."]
    assert "This course is archived and read-only." in archived.content.decode()
    refused = client.get(edit_url)
    assert refused.status_code == 403
    assert ARCHIVED_REFUSAL in refused.content.decode()
    changed = edit_data(course, name="Changed while archived")
    assert client.post(edit_url, changed).status_code == 403
    join_code_url = reverse("courses:join_code", kwargs={"course_id": course.pk})
    assert client.post(join_code_url, {"action": "enable"}).status_code == 403
    add_url = reverse("courses:member_add", kwargs={"course_id": course.pk})
    late = {"email": "late@school.example", "role": "student"}
    assert client.post(add_url, late).status_code == 403
    course.refresh_from_db()
    assert course.name == "Cloud Computing"
    assert course.join_code is None
    assert not course.memberships.filter(email="late@school.example").exists()
    # Reading still works.
    assert client.get(reverse("courses:detail", kwargs={"course_id": course.pk})).status_code == 200
    assert client.get(reverse("courses:audit", kwargs={"course_id": course.pk})).status_code == 200

    restored = client.post(archive_url, follow=True)

    course.refresh_from_db()
    assert not course.is_archived
    assert [str(m) for m in restored.context["messages"]] == ["Restored cs101 from the archive."]
    assert client.get(edit_url).status_code == 200
    assert [e.summary for e in course_events(course, AuditAction.COURSE_ARCHIVED)] == ["Archived course cs101"]
    assert [e.summary for e in course_events(course, AuditAction.COURSE_UNARCHIVED)] == [
        "Restored course cs101 from the archive"
    ]


def test_changes_to_an_archived_course_are_refused_because_it_is_archived(personas):
    course = personas.course
    course.archived_at = "2026-10-01T00:00:00Z"
    course.save()
    request = RequestFactory().get("/")
    request.user = personas.instructor

    with pytest.raises(PermissionDenied) as refusal:
        managed_course(request, course.pk)

    assert str(refusal.value) == ARCHIVED_REFUSAL
    assert managed_course(request, course.pk, allow_archived=True).pk == course.pk


def test_archived_course_leaves_the_active_list_for_the_archived_section(personas):
    client = personas.client("student")
    Course.objects.filter(pk=personas.course.pk).update(archived_at="2026-10-01T00:00:00Z")

    response = client.get(reverse("courses:list"))

    assert response.context["active_courses"] == []
    assert [c.code for c in response.context["archived_courses"]] == ["cs101"]


# --- The join code --------------------------------------------------------------------------------


def post_join_code(client, course: Course, action: str):
    return client.post(reverse("courses:join_code", kwargs={"course_id": course.pk}), {"action": action})


def join_page(client, code: str):
    return client.get(reverse("join_course", kwargs={"code": code}))


def test_join_code_can_be_turned_on_rotated_and_turned_off(personas):
    instructor = personas.client("instructor")
    newcomer = personas.client("other_student")
    course = personas.course

    assert post_join_code(instructor, course, "enable").status_code == 302
    course.refresh_from_db()
    first_code = course.join_code
    assert JOIN_CODE_PATTERN.match(first_code)
    assert course.join_code_enabled
    opened = join_page(newcomer, first_code)
    assert opened.status_code == 200
    assert opened.context["course"] == course

    post_join_code(instructor, course, "rotate")
    course.refresh_from_db()
    second_code = course.join_code
    assert JOIN_CODE_PATTERN.match(second_code)
    assert second_code != first_code
    stale = join_page(newcomer, first_code)
    assert stale.status_code == 404
    assert (
        f"No course is open for joining with the code “{first_code}”. Check the code with your instructor."
    ) in stale.content.decode()
    assert join_page(newcomer, second_code).status_code == 200

    post_join_code(instructor, course, "disable")
    course.refresh_from_db()
    assert not course.join_code_enabled
    assert join_page(newcomer, second_code).status_code == 404

    actions = list(
        AuditEvent.objects.filter(course=course, action__startswith="join_code.")
        .order_by("pk")
        .values_list("action", "summary")
    )
    assert actions == [
        (AuditAction.JOIN_CODE_ENABLED, f"Join code is now {first_code}"),
        (AuditAction.JOIN_CODE_ROTATED, f"Join code is now {second_code}"),
        (AuditAction.JOIN_CODE_DISABLED, "Turned the join code off"),
    ]


def test_turning_the_join_code_back_on_keeps_the_last_code(personas):
    instructor = personas.client("instructor")
    course = personas.course
    post_join_code(instructor, course, "enable")
    course.refresh_from_db()
    code = course.join_code
    post_join_code(instructor, course, "disable")

    post_join_code(instructor, course, "enable")

    course.refresh_from_db()
    assert course.join_code == code
    assert course.join_code_enabled
    assert join_page(personas.client("other_student"), code).status_code == 200


def test_joining_with_the_code_typed_loosely_enrols_a_student(personas):
    course = personas.course
    post_join_code(personas.client("instructor"), course, "enable")
    course.refresh_from_db()
    typed = course.join_code.replace("-", "").lower()
    newcomer = personas.client("other_student")

    response = newcomer.post(reverse("join_course", kwargs={"code": typed}))

    assert response.status_code == 302
    assert response["Location"] == reverse("courses:detail", kwargs={"course_id": course.pk})
    member = course.memberships.get(user=personas.other_student)
    assert (member.role, member.source) == (CourseRole.STUDENT, MembershipSource.JOIN_CODE)


def test_unknown_join_code_action_changes_nothing(personas):
    course = personas.course

    response = post_join_code(personas.client("instructor"), course, "explode")

    assert response.status_code == 302
    course.refresh_from_db()
    assert (course.join_code, course.join_code_enabled) == (None, False)
    assert not AuditEvent.objects.filter(course=course).exists()


def test_archived_course_cannot_be_joined_with_its_code(personas):
    course = personas.course
    post_join_code(personas.client("instructor"), course, "enable")
    course.refresh_from_db()
    Course.objects.filter(pk=course.pk).update(archived_at="2026-10-01T00:00:00Z")
    newcomer = personas.client("other_student")

    page = join_page(newcomer, course.join_code)
    post = newcomer.post(reverse("join_course", kwargs={"code": course.join_code}))

    assert page.status_code == 404
    assert post.status_code == 404
    assert not course.memberships.filter(user=personas.other_student).exists()


# --- The audit page -------------------------------------------------------------------------------


def test_audit_page_lists_the_courses_events_for_its_instructors(personas):
    instructor = personas.client("instructor")
    course = personas.course
    instructor.post(
        reverse("courses:edit", kwargs={"course_id": course.pk}),
        edit_data(course, name="Cloud Computing II"),
    )
    post_join_code(instructor, course, "enable")
    audit_record(
        actor=personas.other_instructor,
        action=AuditAction.COURSE_UPDATED,
        course=personas.other_course,
        target=personas.other_course,
        summary="Edited a different course",
    )

    response = instructor.get(reverse("courses:audit", kwargs={"course_id": course.pk}))

    assert response.status_code == 200
    listed = [(e.action, e.actor_label) for e in response.context["page"]]
    assert listed == [
        (AuditAction.JOIN_CODE_ENABLED, "instructor@school.example"),
        (AuditAction.COURSE_UPDATED, "instructor@school.example"),
    ]
    html = response.content.decode()
    assert "Edited name" in html
    assert "Join code turned on" in html
    assert "Edited a different course" not in html


# --- The append-only audit log --------------------------------------------------------------------


@pytest.fixture
def event(personas) -> AuditEvent:
    return audit_record(
        actor=personas.instructor,
        action=AuditAction.COURSE_UPDATED,
        course=personas.course,
        target=personas.course,
        summary="Edited name",
        data={"changes": {"name": ["a", "b"]}},
    )


def test_saved_audit_event_cannot_be_changed(event):
    event.summary = "Nothing happened"

    with pytest.raises(ValidationError) as error:
        event.save()

    assert error.value.messages == [APPEND_ONLY]
    assert AuditEvent.objects.get(pk=event.pk).summary == "Edited name"


def test_audit_event_cannot_be_deleted(event):
    with pytest.raises(ValidationError) as error:
        event.delete()

    assert error.value.messages == [APPEND_ONLY]
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_audit_events_cannot_be_updated_in_bulk(event):
    with pytest.raises(ValidationError) as error:
        AuditEvent.objects.filter(pk=event.pk).update(summary="Nothing happened")

    assert error.value.messages == [APPEND_ONLY]
    assert AuditEvent.objects.get(pk=event.pk).summary == "Edited name"


def test_audit_events_cannot_be_bulk_updated_through_bulk_update(event):
    event.summary = "Nothing happened"

    # bulk_update() opens a transaction without a savepoint: give the refusal one to roll back.
    with pytest.raises(ValidationError) as error, transaction.atomic():
        AuditEvent.objects.bulk_update([event], ["summary"])

    assert error.value.messages == [APPEND_ONLY]

    assert AuditEvent.objects.get(pk=event.pk).summary == "Edited name"


def test_audit_events_cannot_be_deleted_in_bulk(event):
    with pytest.raises(ValidationError) as error:
        AuditEvent.objects.all().delete()

    assert error.value.messages == [APPEND_ONLY]
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_course_with_audit_history_cannot_be_deleted(event, personas):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        personas.course.delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()
