from __future__ import annotations

import re
from decimal import Decimal

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts_app.choices import CourseRole, WebhookKind, WebhookTopic
from accounts_app.models import Course, normalize_email
from accounts_app.selectors import course_code_locked
from accounts_app.services.courses import (
    CODE_LOCKED,
    COURSE_FIELDS,
    NEW_COURSE_INSTANCE_FAMILIES,
    NEW_COURSE_REGIONS,
    NEW_COURSE_SERVICES,
    JoinCodeLimits,
)
from accounts_app.services.guardrails import course_policy_check
from accounts_app.services.webhooks import WebhookError, webhook_url_check
from portal.aws.bedrock_models import FAMILIES as BEDROCK_FAMILIES
from portal.aws.bedrock_models import unknown_families
from portal.aws.catalog import (
    PRICE_SOURCE,
    instance_family_price_class,
    region_names,
    service_prefixes,
    service_price_class,
)

DEFAULT_REGIONS = NEW_COURSE_REGIONS
DEFAULT_SERVICES = NEW_COURSE_SERVICES
DEFAULT_INSTANCE_FAMILIES = NEW_COURSE_INSTANCE_FAMILIES
EVERY_INSTANCE_TYPE_WARNING = (
    "No instance family is listed, so students may start EVERY instance type, GPU instances "
    "included (some cost over $30 an hour). List the families the course needs, e.g. t3, t3a, t4g."
)


INSTANCE_FAMILY = re.compile(r"^[a-z]+[0-9]+[a-z0-9-]*$")


def split_names(text: str) -> list[str]:
    """Names typed into a box, separated by commas, semicolons or blanks, in lower case."""
    return [name.lower() for name in re.split(r"[\s,;]+", text) if name]


class DateInput(forms.DateInput):
    input_type = "date"


class BedrockFamiliesField(forms.MultipleChoiceField):
    """Checkboxes of Bedrock's model families; keys not in the table are refused, each by name."""

    def __init__(self, **kwargs):
        super().__init__(choices=[(family.key, family.label) for family in BEDROCK_FAMILIES.values()], **kwargs)

    def validate(self, value: list[str]) -> None:
        unknown = unknown_families(value)
        if unknown:
            raise ValidationError(
                "Unknown Bedrock model family: %(names)s. Known families: %(known)s.",
                params={"names": ", ".join(unknown), "known": ", ".join(BEDROCK_FAMILIES)},
            )
        super().validate(value)


class CourseForm(forms.ModelForm):
    allowed_regions = forms.MultipleChoiceField(
        label="Allowed AWS regions",
        widget=forms.CheckboxSelectMultiple,
        help_text="Students can only create resources in these regions.",
    )
    allowed_services = forms.CharField(
        label="Allowed AWS services",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Service prefixes as in IAM actions, separated by commas or spaces, e.g. ec2, s3, lambda.",
    )
    allowed_instance_families = forms.CharField(
        label="Allowed EC2 instance families",
        required=False,
        help_text="e.g. t3, t3a, t4g (burstable, cents an hour). Add GPU or large families (g5, p3, "
        "m5…) only if the course needs them. Empty means every instance type, GPUs included.",
    )
    bedrock_model_families = BedrockFamiliesField(
        label="Allowed Bedrock model families",
        required=False,
        initial=[],
        widget=forms.CheckboxSelectMultiple,
        help_text="Where bedrock is an allowed service, students may run only these families' models "
        "(on demand, through cross-region inference profiles, in batch); none ticked allows every model. "
        "Prices differ about a hundredfold between models: the largest cost dollars per million tokens.",
    )

    class Meta:
        model = Course
        fields = COURSE_FIELDS
        widgets = {
            "start_date": DateInput(),
            "end_date": DateInput(),
            "description": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allowed_regions"].choices = [(code, f"{code} — {name}") for code, name in region_names().items()]
        if self.instance.pk:
            self.initial["allowed_services"] = ", ".join(self.instance.allowed_services)
            self.initial["allowed_instance_families"] = ", ".join(self.instance.allowed_instance_families)
            if course_code_locked(course=self.instance):
                # A disabled field keeps its value whatever is posted, and is never "changed".
                self.fields["code"].disabled = True
                self.fields["code"].help_text = CODE_LOCKED
        else:
            self.initial.setdefault("allowed_regions", DEFAULT_REGIONS)
            self.initial.setdefault("allowed_services", ", ".join(DEFAULT_SERVICES))
            self.initial.setdefault("allowed_instance_families", ", ".join(DEFAULT_INSTANCE_FAMILIES))

    def price_classes(self) -> dict:
        """The hourly price class of each instance family and service the form now allows (as
        typed, or as saved), for the instructor to see what an opt-in costs."""
        families = split_names(self["allowed_instance_families"].value() or "")
        services = split_names(self["allowed_services"].value() or "")
        return {
            "source": PRICE_SOURCE,
            "instance_families": [(family, instance_family_price_class(family)) for family in families],
            "services": [(service, service_price_class(service)) for service in services],
            "every_instance_type": EVERY_INSTANCE_TYPE_WARNING if not families else "",
        }

    def clean_code(self) -> str:
        return self.cleaned_data["code"].lower()

    def clean_budget_per_student(self) -> Decimal:
        budget = self.cleaned_data["budget_per_student"]
        if budget <= 0:
            raise ValidationError("The budget per student must be more than $0.")
        return budget

    def clean_freeze_at_percent(self) -> int:
        percent = self.cleaned_data["freeze_at_percent"]
        if percent > 1000:
            raise ValidationError("Freeze at 1,000% of the budget at most (0 never freezes).")
        return percent

    def clean_spike_multiple(self) -> Decimal:
        multiple = self.cleaned_data["spike_multiple"]
        if multiple < 1:
            raise ValidationError("A spike is at least 1× the usual daily spend.")
        return multiple

    def clean_allowed_services(self) -> list[str]:
        names = split_names(self.cleaned_data["allowed_services"])
        unknown = sorted(set(names) - service_prefixes())
        if unknown:
            raise ValidationError(
                "Unknown AWS service(s): %(names)s. Use the prefix of IAM actions, e.g. ec2, s3.",
                params={"names": ", ".join(unknown)},
            )
        if not names:
            raise ValidationError("Allow at least one service.")
        return sorted(set(names))

    def clean_allowed_instance_families(self) -> list[str]:
        families = split_names(self.cleaned_data["allowed_instance_families"])
        malformed = sorted(f for f in families if not INSTANCE_FAMILY.match(f))
        if malformed:
            raise ValidationError(
                "Not an EC2 instance family: %(names)s. Write the family only, e.g. t3 or m5.",
                params={"names": ", ".join(malformed)},
            )
        return sorted(set(families))

    def clean_bedrock_model_families(self) -> list[str]:
        return sorted(set(self.cleaned_data["bedrock_model_families"]))

    def clean_allowed_regions(self) -> list[str]:
        return sorted(self.cleaned_data["allowed_regions"])

    def clean(self) -> dict:
        cleaned = super().clean()
        start, end = cleaned.get("start_date"), cleaned.get("end_date")
        if start and end and end < start:
            self.add_error("end_date", "The course must end on or after its start date.")
        guardrails = ("allowed_regions", "allowed_services", "allowed_instance_families", "bedrock_model_families")
        if all(name in cleaned for name in guardrails):
            problem = course_policy_check(Course(**{name: cleaned[name] for name in guardrails}))
            if problem:
                self.add_error("allowed_services", problem)
        return cleaned

    def changes(self) -> dict:
        """The edited fields and their new values, for course_update()."""
        return {name: self.cleaned_data[name] for name in self.changed_data}


class RosterUploadForm(forms.Form):
    file = forms.FileField(
        label="Roster CSV",
        help_text="Columns email, name, role (instructor, ta or student), with a header line. "
        "Commas or semicolons. Up to 5,000 people and 2 MB.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.PORTAL_ROSTER_MAX_BYTES:
            limit_mb = settings.PORTAL_ROSTER_MAX_BYTES // (1024 * 1024)
            raise ValidationError(f"The file is larger than {limit_mb} MB.")
        return upload


class RosterConfirmForm(forms.Form):
    send_invitations = forms.BooleanField(required=False, initial=True, label="Email invitations to the people added")


class MemberAddForm(forms.Form):
    email = forms.EmailField()
    name = forms.CharField(max_length=200, required=False)
    role = forms.ChoiceField(choices=CourseRole.choices, initial=CourseRole.STUDENT)

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=CourseRole.choices)


class JoinCodeForm(forms.Form):
    code = forms.CharField(max_length=20, label="Course code")

    def clean_code(self) -> str:
        return Course.normalize_join_code(self.cleaned_data["code"])


# A domain name: labels of letters, digits and inner hyphens, at least two of them.
EMAIL_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class JoinCodeLimitsForm(forms.Form):
    """The limits an instructor sets where they turn the join code on or change it."""

    expires_at = forms.DateTimeField(
        label="Code works until",
        required=False,
        widget=DateTimeInput(),
        help_text="Leave empty for a code that works until you turn it off.",
    )
    max_joins = forms.IntegerField(
        label="Most people who can join with it",
        required=False,
        min_value=1,
        help_text="Counted from when the code was made. Leave empty for no limit.",
    )
    email_domains = forms.CharField(
        label="Only addresses at",
        required=False,
        help_text="e.g. school.edu (subdomains included), separated by commas. Leave empty for any address.",
    )

    def __init__(self, *args, course: Course, **kwargs):
        initial = {
            "expires_at": course.join_code_expires_at,
            "max_joins": course.join_code_max_joins,
            "email_domains": ", ".join(course.join_email_domains),
        }
        super().__init__(*args, initial=initial, **kwargs)

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("Choose a moment in the future, or leave it empty.")
        return expires_at

    def clean_email_domains(self) -> tuple[str, ...]:
        domains = tuple(dict.fromkeys(name.lstrip("@") for name in split_names(self.cleaned_data["email_domains"])))
        malformed = [domain for domain in domains if not EMAIL_DOMAIN.match(domain)]
        if malformed:
            raise ValidationError(
                "Not an email domain: %(names)s. Type domains such as school.edu.",
                params={"names": ", ".join(malformed)},
            )
        return domains

    def limits(self) -> JoinCodeLimits:
        return JoinCodeLimits(
            expires_at=self.cleaned_data["expires_at"],
            max_joins=self.cleaned_data["max_joins"],
            email_domains=self.cleaned_data["email_domains"],
        )


class BringAccountForm(forms.Form):
    aws_account_id = forms.RegexField(
        regex=r"^\d{12}$",
        label="Your AWS account id",
        help_text="12 digits, shown in the account menu at the top right of the AWS console.",
        error_messages={"invalid": "An AWS account id is exactly 12 digits."},
    )


class PrecreateForm(forms.Form):
    count = forms.IntegerField(min_value=1, max_value=500, initial=5, label="How many accounts to pre-create")


class ExtendForm(forms.Form):
    end_date = forms.DateField(label="New end date", widget=DateInput)


class HandoverRequestForm(forms.Form):
    new_root_email = forms.EmailField(
        label="Your own email address",
        help_text="Not your school address: the account's root user signs in with it after the course.",
    )
    # PutAlternateContact's limits, as AWS's Account Management API reference gives them: a name
    # of 1-64 characters, a phone number of 1-25 made of digits, spaces, "+", "-", "(" and ")".
    contact_name = forms.CharField(label="Your full name", max_length=64)
    contact_phone = forms.CharField(
        label="Your phone number",
        max_length=25,
        help_text="With the country code, e.g. +1 555 0100. AWS uses it as the account's contact.",
    )

    def clean_new_root_email(self) -> str:
        email = normalize_email(self.cleaned_data["new_root_email"])
        domain = settings.PORTAL_ROOT_EMAIL_PATTERN.rsplit("@", 1)[-1].lower()
        if email.endswith("@" + domain):
            raise ValidationError("Use an address of your own: the school's mailbox stays with the school.")
        return email

    def clean_contact_phone(self) -> str:
        phone = self.cleaned_data["contact_phone"].strip()
        if not re.fullmatch(r"[\s0-9()+-]+", phone) or len(re.sub(r"\D", "", phone)) < 6:
            raise ValidationError(
                "Write the number with digits, spaces, +, -, ( and ) only, as AWS accepts it, e.g. +1 555 0100."
            )
        return phone

    def clean_contact_name(self) -> str:
        name = " ".join(self.cleaned_data["contact_name"].split())
        if not name or any(not character.isprintable() for character in name):
            raise ValidationError("Write your name as printable text: AWS refuses control characters.")
        return name


class HandoverCodeForm(forms.Form):
    code = forms.CharField(
        label="Code from AWS",
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autocapitalize": "characters"}),
    )


class HandoverCancelForm(forms.Form):
    reason = forms.CharField(label="Why? (optional)", max_length=1000, required=False)


class HandoverDeclineForm(forms.Form):
    reason = forms.CharField(
        label="Why not?",
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The student reads this.",
    )


class WebhookForm(forms.Form):
    """A webhook endpoint: where it posts, in which format, and which alerts."""

    name = forms.CharField(max_length=100, help_text="For you to tell it apart, e.g. #cs101-staff.")
    kind = forms.ChoiceField(label="Kind", choices=WebhookKind.choices, widget=forms.RadioSelect)
    url = forms.CharField(
        label="Webhook address",
        max_length=2000,
        help_text="The https address Slack, Teams or your own service gave you. It is stored encrypted "
        "and never shown again in full.",
    )
    topics = forms.MultipleChoiceField(
        label="Send",
        choices=WebhookTopic.choices,
        initial=WebhookTopic.values,
        widget=forms.CheckboxSelectMultiple,
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("kind") and cleaned.get("url"):
            try:
                cleaned["url"] = webhook_url_check(kind=cleaned["kind"], url=cleaned["url"])
            except WebhookError as error:
                self.add_error("url", str(error))
        return cleaned
