from datetime import date, datetime, timedelta
from decimal import Decimal

import factory
from allauth.account.models import EmailAddress
from django import forms
from django.utils import timezone

from accounts_app.choices import AccountOrigin, CourseRole, MembershipSource
from accounts_app.choices import AccountState as S
from accounts_app.models import Course, MemberAccount, Membership, User
from accounts_app.services.recycling import cooldown_end

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@school.example")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified(user, create, extracted, **kwargs):
        """Users sign in with verified addresses unless a test says verified=False."""
        user.save()
        if create and extracted is not False:
            EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)


class CourseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Course

    name = factory.Sequence(lambda n: f"Cloud Course {n}")
    code = factory.Sequence(lambda n: f"cloud{n}")
    term = "Fall 2026"
    start_date = date(2026, 9, 1)
    end_date = date(2026, 12, 15)
    budget_per_student = Decimal("100.00")
    allowed_regions = ["us-east-1"]
    allowed_services = ["ec2", "s3"]
    billing_contact_email = "billing@school.example"
    usage_alert_email = "alerts@school.example"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    course = factory.SubFactory(CourseFactory)
    user = factory.SubFactory(UserFactory)
    email = factory.LazyAttribute(lambda m: m.user.email if m.user else "someone@school.example")
    name = factory.LazyAttribute(lambda m: m.user.name if m.user else "")
    role = CourseRole.STUDENT
    source = MembershipSource.IMPORT


# A pool's records (a course's, or the organization's once recycled) are nobody's, and a declined
# request frees its student's place.
NO_STUDENT = frozenset({S.POOLED, S.COOLING_DOWN, S.DECLINED})
# A student's own account, asked for and being brought into the organization.
BROUGHT = frozenset({S.AWAITING_APPROVAL, S.INVITING, S.INVITED, S.AWAITING_ACCESS_ROLE, S.DECLINED})
# No account id yet (AWS has not made the account), or none any more (a declined request).
NO_ACCOUNT_ID = frozenset({S.REQUESTED, S.CREATING, S.WAITING_FOR_QUOTA, S.FAILED, S.DECLINED})
# A brought account's states before AWS made the invitation's handshake (or with none kept).
BEFORE_HANDSHAKE = frozenset({S.AWAITING_APPROVAL, S.INVITING, S.FAILED, S.DECLINED})
SENT_EARLIER = timedelta(hours=1)


def _brought_by(record) -> Membership | None:
    if record.origin != AccountOrigin.INVITED:
        return None
    # A declined request keeps the roster entry that made it, not the student's place.
    return record.membership or MembershipFactory(course=record.course)


def _create_request_id(record) -> str:
    """The CreateAccount request that made the account, kept from then on (not a brought
    account's, nor a recycled account's pool record's)."""
    made_by_aws = record.origin == AccountOrigin.CREATED and record.state != S.COOLING_DOWN
    if made_by_aws and (record.state == S.CREATING or record.aws_account_id):
        return f"car-{record.account_name}"
    return ""


def _create_submitted_at(record) -> datetime | None:
    if not record.create_request_id:
        return None
    return timezone.now() - (timedelta(0) if record.state == S.CREATING else SENT_EARLIER)


def _handshake_id(record) -> str:
    if record.origin == AccountOrigin.INVITED and record.state not in BEFORE_HANDSHAKE:
        return f"h-{record.account_name}"
    return ""


def _close_submitted_at(record) -> datetime | None:
    return {S.CLOSING: timezone.now(), S.CLOSED: timezone.now() - SENT_EARLIER}.get(record.state)


def _available_from(record) -> datetime | None:
    return cooldown_end(timezone.now()) if record.state == S.COOLING_DOWN else None


class MemberAccountFactory(factory.django.DjangoModelFactory):
    """A member account record as the portal leaves it in `state` (READY unless told): a student's
    (a new one on `course`, or `membership`'s, whose course it then takes), or nobody's in the
    pool states; the account id once AWS has made the account, or from the start for an account
    the student brings (`origin`, INVITED for the states of a brought account); and the ids and
    stamps of the steps it has been through: the creation request, the invitation's handshake,
    the CloseAccount request and a recycled account's cool-down (its record belongs to no course).
    A field given is kept as given."""

    class Meta:
        model = MemberAccount

    state = S.READY
    course = factory.Maybe(
        factory.LazyAttribute(lambda a: a.state == S.COOLING_DOWN),
        None,
        factory.SubFactory(CourseFactory),
    )
    membership = factory.Maybe(
        factory.LazyAttribute(lambda a: a.state in NO_STUDENT),
        None,
        factory.SubFactory(MembershipFactory, course=factory.SelfAttribute("..course")),
    )
    origin = factory.LazyAttribute(lambda a: AccountOrigin.INVITED if a.state in BROUGHT else AccountOrigin.CREATED)
    brought_by = factory.LazyAttribute(_brought_by)
    root_email = factory.Sequence(lambda n: f"aws+account-{n}@school.example.edu")
    account_name = factory.Sequence(lambda n: f"account-{n}")
    aws_account_id = factory.Maybe(
        factory.LazyAttribute(lambda a: a.state in NO_ACCOUNT_ID),
        None,
        factory.Sequence(lambda n: f"{210000000000 + n}"),
    )
    create_request_id = factory.LazyAttribute(_create_request_id)
    create_submitted_at = factory.LazyAttribute(_create_submitted_at)
    handshake_id = factory.LazyAttribute(_handshake_id)
    close_submitted_at = factory.LazyAttribute(_close_submitted_at)
    available_from = factory.LazyAttribute(_available_from)
    costs_since = factory.LazyAttribute(lambda a: a.available_from.date() if a.available_from else None)

    @classmethod
    def _generate(cls, strategy, params):
        # A record given its student's roster entry is on that entry's course.
        if params.get("membership") is not None:
            params.setdefault("course", params["membership"].course)
        return super()._generate(strategy, params)


def browser_form_data(form: forms.BaseForm, **overrides) -> dict:
    """What a browser submits for `form` as it was shown, with `overrides` typed in. Built from
    the form itself, so a new field with a default needs no change here."""
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif isinstance(value, (list, tuple)):
            data[name] = [str(item) for item in value]
        elif isinstance(value, date):
            data[name] = value.isoformat()
        else:
            data[name] = "" if value is None else str(value)
    data.update(overrides)
    return data
