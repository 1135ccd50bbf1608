from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts_app.forms import EMAIL_DOMAIN, split_names
from accounts_app.models import Course
from lms_app.models import PlatformTrust
from lms_app.selectors import courses_taught

EMAIL_DOMAINS_HELP = (
    "The email domains this LMS speaks for, e.g. example.edu, students.example.edu (each subdomain "
    "is a domain of its own). A launch signs in only people whose address is at one of them, and "
    "never a portal administrator."
)


class EmailDomainsField(forms.Field):
    """Domains typed into one box, separated by commas or blanks; a list of them, in lower case."""

    widget = forms.TextInput

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("help_text", EMAIL_DOMAINS_HELP)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list | tuple):
            return list(value)
        return list(dict.fromkeys(name.lstrip("@") for name in split_names(value or "")))

    def validate(self, value: list[str]) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
        malformed = [domain for domain in value if not EMAIL_DOMAIN.match(domain)]
        if malformed:
            raise ValidationError(
                "Not an email domain: %(names)s. Type domains such as example.edu.",
                params={"names": ", ".join(malformed)},
                code="invalid",
            )


class PlatformTrustForm(forms.ModelForm):
    email_domains = EmailDomainsField(label="Email domains", required=False)

    class Meta:
        model = PlatformTrust
        fields = ["email_domains"]


class PlatformRegistrationForm(forms.Form):
    """What the administrator confirms of a dynamic registration: the name the portal gives the
    LMS and the email domains it trusts it for. The platform's addresses come with the request."""

    openid_configuration = forms.URLField(widget=forms.HiddenInput, assume_scheme="https")
    registration_token = forms.CharField(widget=forms.HiddenInput, required=False, strip=False)
    name = forms.CharField(label="Name in the portal", max_length=255)
    email_domains = EmailDomainsField(label="Email domains it speaks for")


class CourseChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Course) -> str:
        return f"{obj.code}: {obj.name} ({obj.term})"


class LinkCourseForm(forms.Form):
    """Which portal course the LMS course follows: one the person teaches that follows no other."""

    course = CourseChoiceField(
        queryset=Course.objects.none(),
        empty_label=None,
        widget=forms.RadioSelect,
        label="A course you teach in the portal",
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["course"].queryset = courses_taught(user=user).filter(lms_link__isnull=True)  # type: ignore[attr-defined]
