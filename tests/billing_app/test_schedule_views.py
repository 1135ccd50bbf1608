"""The course's schedule page and the student's list of what it stopped (billing_app/schedule_views.py).
No AWS: starting something again is queued for a task, which these tests do not run (the service's
tests do, against moto)."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts_app.choices import AccountState, AuditAction
from accounts_app.models import AuditEvent, MemberAccount, Membership
from billing_app.models import CourseSchedule, ScheduledStop, ScheduleMode, StopReason, StopStatus
from tests.factories import MemberAccountFactory

pytestmark = pytest.mark.django_db

CLASS_HOURS = {
    "mode": "class_hours",
    "weekdays": ["0", "1", "2", "3", "4"],
    "class_starts": "09:00",
    "class_ends": "17:00",
    "stop_at": "",
    "time_zone": "Europe/Paris",
    "idle_hours": "",
}


def schedule_url(course) -> str:
    return reverse("billing:schedule", args=[course.pk])


@pytest.fixture
def account(personas):
    return MemberAccountFactory(membership=Membership.objects.get(user=personas.student), aws_account_id="111111111111")


def stop_in(account: MemberAccount, **fields) -> ScheduledStop:
    values = {
        "course": account.course,
        "region": "us-east-1",
        "kind": "ec2:instance",
        "resource_id": "i-0123456789abcdef0",
        "label": "web (i-0123456789abcdef0): t3.micro, running",
        "reason": StopReason.SCHEDULE,
        "why": "nightly stop at 22:00",
        "period_start": timezone.now() - timedelta(hours=1),
        "status": StopStatus.STOPPED,
        "stopped_at": timezone.now() - timedelta(minutes=50),
        **fields,
    }
    return ScheduledStop.objects.create(account=account, **values)


# --- The schedule page ------------------------------------------------------------------------------


def test_an_instructor_sets_class_hours(personas):
    response = personas.client("instructor").post(schedule_url(personas.course), CLASS_HOURS)

    assert response.status_code == 302
    schedule = CourseSchedule.objects.get(course=personas.course)
    assert (schedule.mode, schedule.weekdays, schedule.class_starts, schedule.class_ends, schedule.zone_name) == (
        ScheduleMode.CLASS_HOURS,
        [0, 1, 2, 3, 4],
        time(9),
        time(17),
        "Europe/Paris",
    )
    audit = AuditEvent.objects.get(action=AuditAction.SCHEDULE_CHANGED)
    assert audit.summary == "cs101: Stopped outside class hours: Mon–Fri 09:00–17:00 (Europe/Paris)."
    page = personas.client("instructor").get(schedule_url(personas.course)).content.decode()
    assert "Mon–Fri 09:00–17:00 (Europe/Paris)" in page


def test_a_nightly_stop_with_an_idle_stop_and_the_portals_time_zone(personas, settings):
    settings.TIME_ZONE = "America/Chicago"
    data = {**CLASS_HOURS, "mode": "nightly", "stop_at": "22:30", "time_zone": "", "idle_hours": "3"}

    personas.client("instructor").post(schedule_url(personas.course), data)

    schedule = CourseSchedule.objects.get(course=personas.course)
    assert (schedule.mode, schedule.stop_at, schedule.idle_hours) == ("nightly", time(22, 30), 3)
    assert (schedule.time_zone, schedule.zone_name) == ("", "America/Chicago")


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ({"weekdays": []}, "Choose at least one day with class hours."),
        ({"class_starts": ""}, "Say when class hours start, e.g. 09:00."),
        ({"class_ends": "08:00"}, "Class hours must end after they start on the same day: 09:00 until 08:00 is not."),
        ({"class_ends": "09:00"}, "Class hours must end after they start on the same day: 09:00 until 09:00 is not."),
        ({"mode": "nightly"}, "Say when the nightly stop happens, e.g. 22:00."),
        ({"time_zone": "Europe/Pariss"}, "“Europe/Pariss” is not a time zone name."),
        ({"time_zone": "../../etc/passwd"}, "is not a time zone name."),
        ({"idle_hours": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"idle_hours": "73"}, "Ensure this value is less than or equal to 72."),
        ({"mode": "sometimes"}, "Select a valid choice. sometimes is not one of the available choices."),
    ],
)
def test_a_schedule_that_does_not_hold_is_refused_saying_why(personas, typed, message):
    response = personas.client("instructor").post(schedule_url(personas.course), {**CLASS_HOURS, **typed})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not CourseSchedule.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.SCHEDULE_CHANGED).exists()


def test_a_ta_reads_the_schedule_and_cannot_change_it(personas):
    CourseSchedule.objects.create(course=personas.course, mode=ScheduleMode.NIGHTLY, stop_at=time(22))
    client = personas.client("ta")

    page = client.get(schedule_url(personas.course)).content.decode()
    refused = client.post(schedule_url(personas.course), {**CLASS_HOURS})

    assert "Stopped every night at 22:00" in page and "Only the course's instructors can change" in page
    assert 'name="mode"' not in page
    assert refused.status_code == 403
    assert CourseSchedule.objects.get().mode == ScheduleMode.NIGHTLY


def test_staff_find_the_schedule_in_the_course_navigation_and_students_do_not(personas):
    link = f'href="{schedule_url(personas.course)}"'
    detail = reverse("courses:detail", args=[personas.course.pk])

    assert link in personas.client("ta").get(detail).content.decode()
    assert link not in personas.client("student").get(detail).content.decode()


# --- What the schedule stopped ----------------------------------------------------------------------


def test_the_student_reads_what_was_stopped_when_and_why_with_a_button_each(personas, account):
    stop_in(account)
    stop_in(account, resource_id="lab-db", kind="rds:db-instance", label="lab-db: postgres", why="idle for 3 hours")

    page = personas.client("student").get(reverse("billing:my_scheduled_stops", args=[personas.course.pk]))

    text = page.content.decode()
    assert "Stopped by the schedule" in text
    assert "EC2 instance web (i-0123456789abcdef0): t3.micro, running" in text and "nightly stop at 22:00" in text
    assert "RDS DB instance lab-db: postgres" in text and "idle for 3 hours" in text
    assert text.count(">Start again</button>") == 2


def test_starting_again_is_queued_and_the_list_says_so(personas, account, django_capture_on_commit_callbacks):
    stop = stop_in(account)
    url = reverse("billing:scheduled_stop_start", args=[personas.course.pk, stop.pk])

    with django_capture_on_commit_callbacks() as queued:
        response = personas.client("student").post(url, headers={"HX-Request": "true"})

    assert len(queued) == 1  # the start, a task behind the gate
    stop.refresh_from_db()
    assert (stop.status, stop.restart_requested_at is not None) == (StopStatus.STARTING, True)
    text = response.content.decode()
    assert "Starting it again… this list updates by itself." in text
    assert "starting again…" in text and 'hx-trigger="every 3s"' in text


@pytest.mark.parametrize(
    ("asked_ago", "queued", "notice"),
    [
        (timedelta(minutes=1), False, "It is already started again, or on its way."),
        # Its task gave up on a resource that stayed busy: the student may ask again.
        (timedelta(minutes=20), True, "Starting it again… this list updates by itself."),
    ],
)
def test_a_start_on_its_way_is_not_asked_twice_but_one_that_never_came_may_be(
    personas, account, asked_ago, queued, notice, django_capture_on_commit_callbacks
):
    stop = stop_in(account, status=StopStatus.STARTING, restart_requested_at=timezone.now() - asked_ago)
    url = reverse("billing:scheduled_stop_start", args=[personas.course.pk, stop.pk])

    with django_capture_on_commit_callbacks() as tasks:
        response = personas.client("student").post(url, headers={"HX-Request": "true"})

    assert len(tasks) == int(queued)
    assert notice in response.content.decode()
    stop.refresh_from_db()
    assert (stop.restart_requested_at > timezone.now() - timedelta(minutes=1)) is queued


def test_a_student_cannot_start_what_was_stopped_in_another_students_account(personas, account):
    classmate = MemberAccountFactory(course=personas.course, aws_account_id="222222222222")
    theirs = stop_in(classmate)
    url = reverse("billing:scheduled_stop_start", args=[personas.course.pk, theirs.pk])

    response = personas.client("student").post(url)

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert (theirs.status, theirs.restart_requested_at) == (StopStatus.STOPPED, None)


def test_a_frozen_account_is_refused_with_a_message_and_shows_no_button(personas, account):
    stop = stop_in(account)
    MemberAccount.objects.filter(pk=account.pk).update(state=AccountState.FROZEN)
    client = personas.client("student")

    response = client.post(reverse("billing:scheduled_stop_start", args=[personas.course.pk, stop.pk]), follow=True)
    listed = client.get(reverse("billing:my_scheduled_stops", args=[personas.course.pk])).content.decode()

    assert "Your account is frozen: nothing in it can be started again until your instructor unfreezes it." in (
        response.content.decode()
    )
    stop.refresh_from_db()
    assert (stop.status, stop.restart_requested_at) == (StopStatus.STOPPED, None)
    assert "Your account is frozen: nothing can be started again until it is unfrozen." in listed
    assert "Start again" not in listed


def test_what_aws_refused_to_stop_has_no_button_and_staff_read_why(personas, account):
    refusal = "The instance 'i-0123456789abcdef0' may not be stopped. Modify its 'disableApiStop' attribute."
    stop_in(account, status=StopStatus.NOT_STOPPED, error=refusal)

    listed = personas.client("student").get(reverse("billing:my_scheduled_stops", args=[personas.course.pk]))
    staff_page = personas.client("ta").get(reverse("billing:student_costs", args=[personas.course.pk, account.pk]))

    assert "AWS refused, so it keeps running" in listed.content.decode()
    assert "Start again" not in listed.content.decode() and refusal not in listed.content.decode()
    staff_text = staff_page.content.decode()
    assert "Stopped by the schedule" in staff_text and "may not be stopped" in staff_text


def test_staff_read_the_same_list_on_the_students_cost_page_without_buttons(personas, account):
    stop_in(account)

    page = personas.client("instructor").get(reverse("billing:student_costs", args=[personas.course.pk, account.pk]))

    text = page.content.decode()
    assert "Stopped by the schedule" in text and "nightly stop at 22:00" in text
    assert "Start again" not in text


def test_the_students_own_cost_page_lists_them_with_buttons_too(personas, account):
    stop_in(account)

    text = personas.client("student").get(reverse("billing:my_costs", args=[personas.course.pk])).content.decode()

    assert "Stopped by the schedule" in text and ">Start again</button>" in text


def test_stops_older_than_two_weeks_are_not_listed(personas, account):
    stop_in(account, stopped_at=timezone.now() - timedelta(days=15))

    listed = personas.client("student").get(reverse("billing:my_scheduled_stops", args=[personas.course.pk]))

    assert "Stopped by the schedule" not in listed.content.decode()
