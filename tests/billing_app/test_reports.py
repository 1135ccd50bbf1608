"""The CSV cost report (download and command) and activating cost allocation tags."""

from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from botocore.stub import Stubber
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts_app.models import AwsOrganization, Membership
from accounts_app.services.bootstrap import aws_bootstrap, cost_tags_activate
from billing_app.models import CostKind, CostRecord, CostSync
from portal.aws.costs import TagActivation
from tests.factories import MemberAccountFactory

HEADER = "email,name,aws_account_id,day,kind,service,amount,currency,estimated"


@pytest.fixture
def costs(personas):
    student = Membership.objects.get(user=personas.student)
    student.name = '=HYPERLINK("http://evil")'
    student.save()
    account = MemberAccountFactory(membership=student, aws_account_id="111122223333")
    sync = CostSync.objects.create(window_start=date(2026, 9, 1), window_end=date(2026, 9, 30))
    for day, kind, service, amount in [
        (date(2026, 9, 2), CostKind.USAGE, "Amazon Simple Storage Service", "0.25"),
        (date(2026, 9, 1), CostKind.USAGE, "Amazon Elastic Compute Cloud - Compute", "1.50"),
        (date(2026, 9, 1), CostKind.CREDIT, "Credit", "-0.40"),
        (date(2026, 10, 5), CostKind.USAGE, "AWS Lambda", "9.99"),
    ]:
        CostRecord.objects.create(
            aws_account_id=account.aws_account_id,
            account=account,
            course=personas.course,
            day=day,
            kind=kind,
            service=service,
            amount=Decimal(amount),
            sync=sync,
        )
    return account


# The student's columns, the name written so that a spreadsheet shows it and runs nothing.
STUDENT_COLUMNS = 'student@school.example,"\'=HYPERLINK(""http://evil"")",111122223333'
EXPECTED = [
    HEADER,
    f"{STUDENT_COLUMNS},2026-09-01,credit,Credit,-0.400000,USD,False",
    f"{STUDENT_COLUMNS},2026-09-01,usage,Amazon Elastic Compute Cloud - Compute,1.500000,USD,False",
    f"{STUDENT_COLUMNS},2026-09-02,usage,Amazon Simple Storage Service,0.250000,USD,False",
]


@pytest.mark.django_db
def test_cost_report_command_writes_the_csv_for_the_dates_asked(costs):
    out = StringIO()

    call_command("cost_report", "cs101", "--from", "2026-09-01", "--to", "2026-09-30", "--format", "csv", stdout=out)

    assert out.getvalue().splitlines() == EXPECTED


@pytest.mark.django_db
def test_cost_report_command_writes_a_file(costs, tmp_path):
    target = tmp_path / "report.csv"

    call_command(
        "cost_report", "cs101", "--from", "2026-09-01", "--to", "2026-09-30", "--output", str(target), stderr=StringIO()
    )

    assert target.read_text(encoding="utf-8").splitlines() == EXPECTED


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--from", "2026-09-01", "--to", "2026-09-30"], "No course has the code “nope”."),
        (["cs101", "--from", "2026-09-30", "--to", "2026-09-01"], "--to must be on or after --from."),
    ],
)
def test_cost_report_command_refuses_bad_input(personas, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("cost_report", *args, stdout=StringIO())


@pytest.mark.django_db
def test_the_downloaded_report_is_the_same_csv(costs, personas):
    url = reverse("billing:costs_export", args=[personas.course.pk]) + "?from=2026-09-01&to=2026-09-30"

    response = personas.client("ta").get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert b"".join(response.streaming_content).decode().splitlines() == EXPECTED


@pytest.mark.django_db
def test_a_bad_date_in_the_download_is_refused(costs, personas):
    url = reverse("billing:costs_export", args=[personas.course.pk]) + "?from=yesterday"

    assert personas.client("instructor").get(url).status_code == 404


@pytest.mark.django_db
def test_bootstrap_activates_the_tag_keys_courses_name(personas, aws):
    personas.course.cost_tag_key = "project"
    personas.course.save()
    personas.other_course.cost_tag_key = "team"
    personas.other_course.save()
    stub = Stubber(aws.client("ce"))
    stub.add_response(
        "update_cost_allocation_tags_status",
        {"Errors": []},
        {
            "CostAllocationTagsStatus": [
                {"TagKey": "project", "Status": "Active"},
                {"TagKey": "team", "Status": "Active"},
            ]
        },
    )

    with stub:
        activation = cost_tags_activate()

    stub.assert_no_pending_responses()
    assert (activation.active, activation.refused) == (["project", "team"], {})


@pytest.mark.django_db
def test_a_tag_key_aws_refuses_inside_a_successful_answer_is_reported(personas, aws, caplog):
    """AWS answers UpdateCostAllocationTagsStatus with success and lists the keys it refused in
    Errors (a key no billed resource has carried yet): scripted with Stubber, moto has no Cost
    Explorer tag API."""
    personas.course.cost_tag_key = "project"
    personas.course.save()
    personas.other_course.cost_tag_key = "team"
    personas.other_course.save()
    refused = {"TagKey": "team", "Code": "TagKeysNotFoundException", "Message": "Tag key not found."}
    stub = Stubber(aws.client("ce"))
    stub.add_response("update_cost_allocation_tags_status", {"Errors": [refused]}, None)

    with stub:
        report = aws_bootstrap(actor=None)

    assert "Cost allocation tags active: project." in report
    assert (
        "Cost allocation tag “team” not activated; AWS said: TagKeysNotFoundException Tag key not found. AWS "
        "knows a tag key only once a billed resource carries it (up to a day after tagging): run aws_bootstrap "
        "again then."
    ) in report
    assert "Cost allocation tag team not activated: TagKeysNotFoundException Tag key not found." in caplog.text


@pytest.mark.django_db
def test_no_tag_keys_means_no_request(personas, aws):
    stub = Stubber(aws.client("ce"))

    with stub:
        assert cost_tags_activate() == TagActivation([], {})

    stub.assert_no_pending_responses()


def activate_with_refusal(aws, refused: list[dict]) -> TagActivation:
    """UpdateCostAllocationTagsStatus, answered by AWS with these keys in Errors (Stubber: moto has
    no Cost Explorer tag API)."""
    stub = Stubber(aws.client("ce"))
    stub.add_response("update_cost_allocation_tags_status", {"Errors": refused}, None)
    with stub:
        return cost_tags_activate()


TEAM_REFUSED = {"TagKey": "team", "Code": "TagKeysNotFoundException", "Message": "Tag key not found."}


@pytest.mark.django_db
def test_a_refused_tag_key_is_kept_and_shown_where_staff_see_the_courses_costs(personas, aws):
    personas.course.cost_tag_key = "team"
    personas.course.save()
    personas.other_course.cost_tag_key = "project"
    personas.other_course.save()
    account = MemberAccountFactory(membership=Membership.objects.get(user=personas.student))

    activate_with_refusal(aws, [TEAM_REFUSED])

    assert AwsOrganization.load().refused_cost_tags == {"team": "TagKeysNotFoundException Tag key not found."}
    dashboard = personas.client("ta").get(reverse("billing:costs", args=[personas.course.pk])).content.decode()
    assert (
        "Costs by the “team” tag are unavailable: AWS has not activated it as a cost allocation tag. AWS said: "
        "“TagKeysNotFoundException Tag key not found.”" in dashboard
    )
    detail = (
        personas.client("instructor")
        .get(reverse("billing:student_costs", args=[personas.course.pk, account.pk]))
        .content.decode()
    )
    assert "Unavailable: AWS has not activated “team” as a cost allocation tag." in detail
    assert "No tagged spend yet" not in detail
    # The student reads a plain sentence, not AWS's answer.
    own = personas.client("student").get(reverse("billing:my_costs", args=[personas.course.pk])).content.decode()
    assert "Costs by this tag are not available yet" in own
    assert "TagKeysNotFoundException" not in own
    # The other course's key was activated: nothing to say there.
    other = personas.client("other_instructor").get(reverse("billing:costs", args=[personas.other_course.pk]))
    assert "are unavailable" not in other.content.decode()


@pytest.mark.django_db
def test_a_tag_key_aws_activates_at_a_later_try_is_no_longer_reported(personas, aws):
    personas.course.cost_tag_key = "team"
    personas.course.save()
    activate_with_refusal(aws, [TEAM_REFUSED])

    activate_with_refusal(aws, [])  # a billed resource has carried the key since

    assert AwsOrganization.load().refused_cost_tags == {}
    dashboard = personas.client("instructor").get(reverse("billing:costs", args=[personas.course.pk]))
    assert "are unavailable" not in dashboard.content.decode()
