from datetime import date
from decimal import Decimal

import factory
from allauth.account.models import EmailAddress
from django import forms

from accounts_app.choices import CourseRole, MembershipSource
from accounts_app.models import Course, Membership, User

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


def browser_form_data(form: forms.Form, **overrides) -> dict:
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
