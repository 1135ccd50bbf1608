"""Roster imports: the preview plan, the all-or-nothing import, and the browser flow around it."""

import csv
import io
import re

import pytest
from django.conf import settings
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts_app.choices import AuditAction, CourseRole, InviteStatus, MembershipSource
from accounts_app.models import AuditEvent, Membership, RosterUpload
from accounts_app.services.rosters import (
    RosterImportError,
    RowOutcome,
    roster_import,
    roster_plan,
    roster_upload_apply,
    roster_upload_create,
)
from tests.factories import CourseFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


ROSTER = "email,name,role\nann@school.example,Ann Arbor,student\nbob@school.example,Bob Builder,ta\n"


def roster_state(course) -> list[tuple]:
    return list(
        course.memberships.order_by("email").values_list(
            "email", "name", "role", "source", "invite_status", "user_id", "updated_at"
        )
    )


def import_events(course):
    return AuditEvent.objects.filter(course=course, action=AuditAction.ROSTER_IMPORTED)


# --- Service: roster_import -----------------------------------------------------------------------


def test_import_adds_everyone_in_the_file(personas):
    plan = roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)

    assert plan.summary == {"add": 2, "update": 0, "unchanged": 0}
    added = personas.course.memberships.filter(email__in=["ann@school.example", "bob@school.example"])
    assert sorted(added.values_list("email", "name", "role", "source", "invite_status", "user")) == [
        ("ann@school.example", "Ann Arbor", "student", "import", "not_sent", None),
        ("bob@school.example", "Bob Builder", "ta", "import", "not_sent", None),
    ]
    assert personas.course.memberships.count() == 5
    assert mail.outbox == []


def test_importing_the_same_file_again_changes_nothing(personas):
    roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)
    before = roster_state(personas.course)

    plan = roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)

    assert [planned.outcome for planned in plan.rows] == [
        RowOutcome.UNCHANGED,
        RowOutcome.UNCHANGED,
    ]
    assert plan.summary == {"add": 0, "update": 0, "unchanged": 2}
    assert roster_state(personas.course) == before
    assert personas.course.memberships.filter(email="ann@school.example").count() == 1


def test_reimport_with_changed_role_and_name_updates_the_entry(personas):
    roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)
    changed = "email,name,role\nann@school.example,Ann Arbor,ta\nbob@school.example,Robert Builder,ta\n"

    plan = roster_import(actor=personas.instructor, course=personas.course, text=changed, send_invitations=False)

    assert [(p.row.email, p.outcome, p.changes) for p in plan.rows] == [
        ("ann@school.example", RowOutcome.UPDATE, ("role: Student → TA",)),
        ("bob@school.example", RowOutcome.UPDATE, ("name: Bob Builder → Robert Builder",)),
    ]
    assert sorted(
        personas.course.memberships.filter(email__endswith="@school.example", user=None).values_list(
            "email", "name", "role"
        )
    ) == [
        ("ann@school.example", "Ann Arbor", "ta"),
        ("bob@school.example", "Robert Builder", "ta"),
    ]


def test_an_empty_name_in_the_file_keeps_the_name_on_the_roster(personas):
    roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)

    plan = roster_import(
        actor=personas.instructor,
        course=personas.course,
        text="email,name,role\nann@school.example,,student\n",
        send_invitations=False,
    )

    assert plan.summary == {"add": 0, "update": 0, "unchanged": 1}
    assert personas.course.memberships.get(email="ann@school.example").name == "Ann Arbor"


def test_a_file_with_one_bad_line_changes_nothing(personas):
    roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)
    before = roster_state(personas.course)
    events_before = AuditEvent.objects.count()
    text = (
        "email,name,role\n"
        "ann@school.example,Ann Arbor,instructor\n"  # would be an update
        "carl@school.example,Carl,student\n"  # would be an addition
        "dora@school.example,Dora,dean\n"  # the bad line
    )

    with pytest.raises(RosterImportError) as caught:
        roster_import(actor=personas.instructor, course=personas.course, text=text, send_invitations=True)

    assert [str(error) for error in caught.value.errors] == [
        "Line 4: Unknown role “dean”. Use instructor, ta or student."
    ]
    assert str(caught.value) == "Line 4: Unknown role “dean”. Use instructor, ta or student."
    assert roster_state(personas.course) == before
    assert AuditEvent.objects.count() == events_before


def test_an_import_that_leaves_no_instructor_is_refused(personas):
    before = roster_state(personas.course)
    text = "email,role\ninstructor@school.example,ta\nnew@school.example,student\n"

    with pytest.raises(RosterImportError) as caught:
        roster_import(actor=personas.instructor, course=personas.course, text=text, send_invitations=False)

    assert [str(error) for error in caught.value.errors] == ["This file would leave the course without an instructor."]
    assert roster_state(personas.course) == before
    assert not import_events(personas.course).exists()


def test_demoting_one_instructor_is_fine_when_the_file_names_another(personas):
    text = "email,role\ninstructor@school.example,ta\nnew-prof@school.example,instructor\n"

    roster_import(actor=personas.instructor, course=personas.course, text=text, send_invitations=False)

    assert dict(personas.course.memberships.values_list("email", "role")) == {
        "instructor@school.example": "ta",
        "new-prof@school.example": "instructor",
        "ta@school.example": "ta",
        "student@school.example": "student",
    }


def test_people_missing_from_the_file_stay_on_the_roster(personas):
    roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)

    roster_import(
        actor=personas.instructor,
        course=personas.course,
        text="email\ncarl@school.example\n",
        send_invitations=False,
    )

    assert sorted(personas.course.memberships.values_list("email", flat=True)) == [
        "ann@school.example",
        "bob@school.example",
        "carl@school.example",
        "instructor@school.example",
        "student@school.example",
        "ta@school.example",
    ]


def test_an_import_only_touches_its_own_course(personas):
    MembershipFactory(course=personas.other_course, user=None, email="ann@school.example", name="Ann B")

    roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)

    assert personas.other_course.memberships.get(email="ann@school.example").name == "Ann B"
    assert personas.other_course.memberships.count() == 3


def test_the_audit_event_summarises_the_import(personas):
    roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)
    text = "email,name,role\nann@school.example,Ann Arbor,ta\nbob@school.example,,ta\ncarl@school.example,,\n"

    roster_import(
        actor=personas.instructor,
        course=personas.course,
        text=text,
        send_invitations=False,
        source_name="week2.csv",
    )

    event = import_events(personas.course).first()
    assert import_events(personas.course).count() == 2
    assert event.actor == personas.instructor
    assert event.actor_label == "instructor@school.example"
    assert event.summary == "Imported week2.csv: 1 added, 1 updated, 1 unchanged"
    assert event.object_type == "course"
    assert event.object_id == str(personas.course.pk)
    assert event.data == {
        "added": ["carl@school.example"],
        "updated": {"ann@school.example": ["role: Student → TA"]},
    }


def test_sending_invitations_emails_each_new_person_a_working_link(personas, django_capture_on_commit_callbacks):
    anonymous = personas.client("anonymous")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=True)

    assert len(callbacks) == 2  # the invitations' task, then the one that sends them
    assert sorted(message.to[0] for message in mail.outbox) == [
        "ann@school.example",
        "bob@school.example",
    ]
    assert all(len(message.to) == 1 for message in mail.outbox)
    ann_email = next(m for m in mail.outbox if m.to == ["ann@school.example"])
    assert ann_email.subject == "[Classroom Cloud] You are invited to cs101: Cloud Computing"
    assert "Hello Ann Arbor," in ann_email.body
    link = re.search(r"^(http\S+/invite/\S+/)$", ann_email.body, re.MULTILINE).group(1)
    assert link.startswith(settings.PORTAL_BASE_URL + "/invite/")
    assert link in ann_email.alternatives[0].content

    response = anonymous.get(link.removeprefix(settings.PORTAL_BASE_URL))

    assert response.status_code == 200
    assert response.context["member"].email == "ann@school.example"
    assert "You are invited to Cloud Computing" in response.text

    invited = personas.course.memberships.filter(user=None)
    assert set(invited.values_list("invite_status", flat=True)) == {InviteStatus.SENT}
    assert all(member.invited_at is not None for member in invited)
    sent_event = AuditEvent.objects.get(course=personas.course, action=AuditAction.INVITATIONS_SENT)
    assert sent_event.summary == "Sent 2 invitation(s)"
    assert sorted(sent_event.data["emails"]) == ["ann@school.example", "bob@school.example"]


def test_reimport_with_invitations_does_not_email_people_already_invited(personas, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=True)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        roster_import(
            actor=personas.instructor,
            course=personas.course,
            text=ROSTER + "carl@school.example,Carl,student\n",
            send_invitations=True,
        )

    assert [message.to for message in mail.outbox] == [["carl@school.example"]]


def test_invitations_go_only_to_the_people_this_import_added(personas, django_capture_on_commit_callbacks):
    roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=False)

    with django_capture_on_commit_callbacks(execute=True):
        roster_import(
            actor=personas.instructor,
            course=personas.course,
            text="email,name,role\ncarl@school.example,Carl,student\n",
            send_invitations=True,
        )

    assert [message.to for message in mail.outbox] == [["carl@school.example"]]
    not_invited = personas.course.memberships.filter(email__in=["ann@school.example", "bob@school.example"])
    assert set(not_invited.values_list("invite_status", flat=True)) == {InviteStatus.NOT_SENT}


def test_no_email_is_sent_until_the_import_commits(personas, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        roster_import(actor=personas.instructor, course=personas.course, text=ROSTER, send_invitations=True)

    assert len(callbacks) == 1
    assert mail.outbox == []
    assert not personas.course.memberships.filter(invite_status=InviteStatus.SENT).exists()


def test_no_invitation_is_sent_for_people_who_already_signed_in(personas, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        roster_import(
            actor=personas.instructor,
            course=personas.course,
            text="email,role\nstudent@school.example,ta\n",
            send_invitations=True,
        )

    assert callbacks == []
    assert mail.outbox == []


def roster_file(people: int, role: str = "student") -> str:
    return "email,name,role\n" + "".join(f"learner{i}@school.example,Learner {i},{role}\n" for i in range(people))


def queries_of_import(text: str) -> int:
    course = CourseFactory()
    MembershipFactory(course=course, role=CourseRole.INSTRUCTOR)
    actor = UserFactory()
    with CaptureQueriesContext(connection) as captured:
        roster_import(actor=actor, course=course, text=text, send_invitations=True)
    return len(captured)


def test_import_runs_the_same_number_of_queries_for_10_and_500_people(db):
    ten = queries_of_import(roster_file(10))
    five_hundred = queries_of_import(roster_file(500))

    assert ten == five_hundred


def test_updating_runs_the_same_number_of_queries_for_10_and_500_people(db):
    def queries_of_update(people: int) -> int:
        course = CourseFactory()
        MembershipFactory(course=course, role=CourseRole.INSTRUCTOR)
        actor = UserFactory()
        roster_import(actor=actor, course=course, text=roster_file(people), send_invitations=False)
        with CaptureQueriesContext(connection) as captured:
            plan = roster_import(actor=actor, course=course, text=roster_file(people, "ta"), send_invitations=True)
        assert plan.count(RowOutcome.UPDATE) == people
        assert course.memberships.filter(role=CourseRole.TA).count() == people
        return len(captured)

    assert queries_of_update(10) == queries_of_update(500)


def test_the_largest_allowed_file_imports_and_reimports_with_changes(db):
    course = CourseFactory()
    MembershipFactory(course=course, role=CourseRole.INSTRUCTOR)

    added = roster_import(actor=None, course=course, text=roster_file(5000), send_invitations=False)
    updated = roster_import(actor=None, course=course, text=roster_file(5000, "ta"), send_invitations=False)

    assert added.summary == {"add": 5000, "update": 0, "unchanged": 0}
    assert updated.summary == {"add": 0, "update": 5000, "unchanged": 0}
    assert course.memberships.filter(role=CourseRole.TA, source=MembershipSource.IMPORT).count() == 5000
    assert course.memberships.count() == 5001


# --- Service: uploads and their preview -----------------------------------------------------------


def test_roster_plan_reads_only(personas):
    before = roster_state(personas.course)

    with CaptureQueriesContext(connection) as captured:
        plan = roster_plan(course=personas.course, text=ROSTER)

    assert plan.summary == {"add": 2, "update": 0, "unchanged": 0}
    assert all(query["sql"].lstrip().upper().startswith("SELECT") for query in captured)
    assert roster_state(personas.course) == before


def test_applying_an_upload_twice_imports_once(personas):
    upload, plan = roster_upload_create(
        actor=personas.instructor, course=personas.course, filename="r.csv", data=ROSTER.encode()
    )
    assert plan.summary == {"add": 2, "update": 0, "unchanged": 0}

    first = roster_upload_apply(actor=personas.instructor, upload=upload, send_invitations=False)
    second = roster_upload_apply(actor=personas.instructor, upload=upload, send_invitations=False)

    assert first.summary == {"add": 2, "update": 0, "unchanged": 0}
    assert second.summary == {"add": 0, "update": 0, "unchanged": 2}
    assert import_events(personas.course).count() == 1
    upload.refresh_from_db()
    assert upload.applied_at is not None


def test_upload_create_refuses_an_unreadable_file_and_keeps_nothing(personas):
    with pytest.raises(ValueError, match="The file is not UTF-8 text"):
        roster_upload_create(
            actor=personas.instructor,
            course=personas.course,
            filename="r.csv",
            data="email\nzoë@school.example\n".encode("latin-1"),
        )

    assert not RosterUpload.objects.exists()


# --- Browser flow ---------------------------------------------------------------------------------


def confirm(client, preview_url: str, *, send_invitations: bool = False, follow: bool = False):
    """Submit the preview form as a browser does: the CSRF field is always part of the POST (the
    test client does not check it), the checkbox only when ticked."""
    data = {"csrfmiddlewaretoken": "browser-sends-this"}
    if send_invitations:
        data["send_invitations"] = "on"
    return client.post(preview_url, data, follow=follow)


def upload(client, course, text: str, filename: str = "roster.csv"):
    return client.post(
        reverse("courses:roster_import", kwargs={"course_id": course.pk}),
        {"file": SimpleUploadedFile(filename, text.encode(), content_type="text/csv")},
    )


def test_instructor_uploads_previews_and_confirms_an_import(personas):
    client = personas.client("instructor")
    course = personas.course
    MembershipFactory(course=course, user=None, email="carl@school.example", name="Carl", role="student")
    before = roster_state(course)
    text = ROSTER + "carl@school.example,Carl,ta\nstudent@school.example,,student\n"

    response = upload(client, course, text, filename="fall.csv")

    upload_row = RosterUpload.objects.get()
    assert response.status_code == 302
    assert response.url == reverse(
        "courses:roster_preview", kwargs={"course_id": course.pk, "upload_id": upload_row.pk}
    )
    assert upload_row.filename == "fall.csv"
    assert upload_row.uploaded_by == personas.instructor
    assert upload_row.applied_at is None

    preview = client.get(response.url)

    assert preview.status_code == 200
    assert [(p.row.line, p.row.email, p.outcome) for p in preview.context["plan"].rows] == [
        (2, "ann@school.example", RowOutcome.ADD),
        (3, "bob@school.example", RowOutcome.ADD),
        (4, "carl@school.example", RowOutcome.UPDATE),
        (5, "student@school.example", RowOutcome.UNCHANGED),
    ]
    html = " ".join(preview.text.split())
    assert "4 people: <strong>2</strong> to add, <strong>1</strong> to update, 1 unchanged." in html
    assert 'name="send_invitations"' in html
    assert "<td>4</td><td>carl@school.example</td><td>Carl</td>" in html
    assert "Update: role: Student → TA" in html
    assert "No change" in html
    # Nothing is saved by uploading or previewing.
    assert roster_state(course) == before
    assert not import_events(course).exists()

    confirmed = confirm(client, response.url, follow=True)

    assert confirmed.redirect_chain == [(reverse("courses:roster", kwargs={"course_id": course.pk}), 302)]
    assert "Imported fall.csv: 2 added, 1 updated." in confirmed.text
    assert dict(course.memberships.values_list("email", "role")) == {
        "instructor@school.example": "instructor",
        "ta@school.example": "ta",
        "student@school.example": "student",
        "ann@school.example": "student",
        "bob@school.example": "ta",
        "carl@school.example": "ta",
    }
    assert "ann@school.example" in confirmed.text
    assert mail.outbox == []  # the box was left unticked


def test_preview_lists_errors_by_line_and_offers_no_import(personas):
    client = personas.client("instructor")
    before = roster_state(personas.course)
    text = (
        "email,name,role\n"
        "ann@school.example,Ann,student\n"
        "\n"
        "not-an-email,Bob,student\n"
        "carl@school.example,Carl,dean\n"
        "ANN@school.example,Ann again,ta\n"
    )

    response = upload(client, personas.course, text)
    preview = client.get(response.url)

    assert [str(error) for error in preview.context["plan"].errors] == [
        "Line 4: “not-an-email” is not a valid email address.",
        "Line 5: Unknown role “dean”. Use instructor, ta or student.",
        "Line 6: ann@school.example is already on line 2. List each person once.",
    ]
    html = preview.text
    assert "Nothing was imported: fix 3 problems and upload the file again" in html
    assert "<li>Line 4: “not-an-email” is not a valid email address.</li>" in html
    assert "<li>Line 5: Unknown role “dean”. Use instructor, ta or student.</li>" in html
    assert "<li>Line 6: ann@school.example is already on line 2. List each person once.</li>" in html
    assert 'name="send_invitations"' not in html  # no confirm form to submit

    confirmed = confirm(client, response.url, send_invitations=True)

    assert confirmed.status_code == 200
    assert "The roster changed since this preview; see the errors below." in confirmed.text
    assert roster_state(personas.course) == before
    assert not import_events(personas.course).exists()
    assert RosterUpload.objects.get().applied_at is None


def test_confirming_with_invitations_emails_the_new_people(personas, django_capture_on_commit_callbacks):
    client = personas.client("instructor")
    response = upload(client, personas.course, ROSTER)

    with django_capture_on_commit_callbacks(execute=True):
        confirm(client, response.url, send_invitations=True)

    assert sorted(message.to[0] for message in mail.outbox) == [
        "ann@school.example",
        "bob@school.example",
    ]


def test_confirming_the_same_upload_twice_imports_once(personas):
    client = personas.client("instructor")
    response = upload(client, personas.course, ROSTER)

    first = confirm(client, response.url)
    second = confirm(client, response.url)

    assert first.status_code == 302
    assert second.status_code == 404
    assert import_events(personas.course).count() == 1
    assert personas.course.memberships.filter(email="ann@school.example").count() == 1


def test_upload_of_a_latin1_file_shows_the_error_on_the_form(personas):
    client = personas.client("instructor")
    data = "email,name\nzoe@school.example,Zoë\n".encode("latin-1")  # ë is byte 33

    response = client.post(
        reverse("courses:roster_import", kwargs={"course_id": personas.course.pk}),
        {"file": SimpleUploadedFile("r.csv", data)},
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "file": [("The file is not UTF-8 text (byte 33 is invalid). In your spreadsheet, save it as “CSV UTF-8”.")]
    }
    assert not RosterUpload.objects.exists()


def test_upload_over_two_megabytes_is_refused_by_the_form(personas):
    client = personas.client("instructor")
    big = "email\n" + "x" * (2 * 1024 * 1024)

    response = upload(client, personas.course, big)

    assert response.status_code == 200
    assert response.context["form"].errors == {"file": ["The file is larger than 2 MB."]}
    assert not RosterUpload.objects.exists()


@pytest.mark.parametrize("persona", ["ta", "student"])
def test_course_members_other_than_instructors_cannot_import(personas, persona):
    client = personas.client(persona)
    url = reverse("courses:roster_import", kwargs={"course_id": personas.course.pk})

    assert client.get(url).status_code == 403
    assert upload(client, personas.course, ROSTER).status_code == 403
    assert not RosterUpload.objects.exists()
    assert personas.course.memberships.count() == 3


def test_a_ta_cannot_confirm_an_instructors_upload(personas):
    response = upload(personas.client("instructor"), personas.course, ROSTER)

    confirmed = confirm(personas.client("ta"), response.url)

    assert confirmed.status_code == 403
    assert RosterUpload.objects.get().applied_at is None
    assert personas.course.memberships.count() == 3


def test_instructor_of_another_course_cannot_see_the_upload_page(personas):
    url = reverse("courses:roster_import", kwargs={"course_id": personas.course.pk})

    assert personas.client("other_instructor").get(url).status_code == 404


# --- Export ---------------------------------------------------------------------------------------


def test_export_neutralises_formulas_in_names(personas):
    MembershipFactory(course=personas.course, user=None, email="evil@school.example", name='=HYPERLINK("x")')

    response = personas.client("ta").get(reverse("courses:roster_export", kwargs={"course_id": personas.course.pk}))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="cs101-roster-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["email", "name", "role", "invitation", "signed_in"]
    evil = next(row for row in rows if row[0] == "evil@school.example")
    assert evil == [
        "evil@school.example",
        '\'=HYPERLINK("x")',
        "student",
        "Not invited yet",
        "False",
    ]


def test_a_formula_name_survives_import_and_is_neutralised_on_export(personas):
    roster_import(
        actor=personas.instructor,
        course=personas.course,
        text='email,name\nevil@school.example,"@SUM(A1)"\nplus@school.example,+1\n',
        send_invitations=False,
    )

    response = personas.client("instructor").get(
        reverse("courses:roster_export", kwargs={"course_id": personas.course.pk})
    )

    assert personas.course.memberships.get(email="evil@school.example").name == "@SUM(A1)"
    names = {row[0]: row[1] for row in csv.reader(io.StringIO(response.content.decode()))}
    assert names["evil@school.example"] == "'@SUM(A1)"
    assert names["plus@school.example"] == "'+1"


def test_students_cannot_export_the_roster(personas):
    response = personas.client("student").get(
        reverse("courses:roster_export", kwargs={"course_id": personas.course.pk})
    )

    assert response.status_code == 403


def test_membership_source_of_imported_people_is_import(personas):
    roster_import(actor=None, course=personas.course, text=ROSTER, send_invitations=False)

    assert set(
        Membership.objects.filter(email__in=["ann@school.example", "bob@school.example"]).values_list(
            "source", flat=True
        )
    ) == {MembershipSource.IMPORT}
    assert import_events(personas.course).get().actor_label == "system"
