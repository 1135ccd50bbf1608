import calendar
from decimal import Decimal
from zoneinfo import available_timezones

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from billing_app.models import CourseSpendLimits, ScheduleMode

MAX_ACCELERATED_INSTANCES = 1000
MAX_PROJECTION_HOURS = 31 * 24  # a month: beyond it, almost anything running would freeze


class BudgetRequestForm(forms.Form):
    amount = forms.DecimalField(
        label="New budget (USD)",
        max_digits=10,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text="The whole budget you need, not what to add to it.",
    )
    reason = forms.CharField(
        label="Why you need it",
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Your instructor reads this, e.g. the project and what it runs.",
    )


class BudgetDeclineForm(forms.Form):
    reason = forms.CharField(
        label="Reason (the student reads it)",
        max_length=1000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


WEEKDAYS = [(str(day), name) for day, name in enumerate(calendar.day_name)]
MAX_IDLE_HOURS = 72
TIME_INPUT = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")


class CourseScheduleForm(forms.Form):
    """A course's schedule. Only the fields of the chosen mode must be filled in; the others are
    kept as typed, for when the mode is switched back."""

    mode = forms.ChoiceField(label="Stop what runs", choices=ScheduleMode.choices, widget=forms.RadioSelect)
    weekdays = forms.TypedMultipleChoiceField(
        label="Days with class hours",
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    class_starts = forms.TimeField(label="Class hours from", required=False, widget=TIME_INPUT)
    class_ends = forms.TimeField(label="Class hours until", required=False, widget=TIME_INPUT)
    stop_at = forms.TimeField(label="Nightly stop at", required=False, widget=TIME_INPUT)
    time_zone = forms.CharField(
        label="Time zone",
        max_length=64,
        required=False,
        help_text=f"A name such as Europe/Paris or America/New_York. Empty: the portal's, {settings.TIME_ZONE}.",
    )
    idle_hours = forms.IntegerField(
        label="Stop idle EC2 instances after (hours)",
        min_value=1,
        max_value=MAX_IDLE_HOURS,
        required=False,
        help_text="An instance whose CPU and network stayed near zero that long is stopped. Empty: never.",
    )

    def clean_time_zone(self) -> str:
        name = self.cleaned_data["time_zone"].strip()
        if name and name not in available_timezones():
            raise ValidationError(
                f"“{name}” is not a time zone name. Use one such as Europe/Paris, America/New_York or UTC."
            )
        return name

    def clean(self) -> dict:
        data = super().clean()
        mode = data.get("mode")
        if mode == ScheduleMode.CLASS_HOURS:
            self._check_class_hours(data)
        elif mode == ScheduleMode.NIGHTLY and data.get("stop_at") is None and "stop_at" not in self.errors:
            self.add_error("stop_at", "Say when the nightly stop happens, e.g. 22:00.")
        return data

    def _check_class_hours(self, data: dict) -> None:
        if not data.get("weekdays") and "weekdays" not in self.errors:
            self.add_error("weekdays", "Choose at least one day with class hours.")
        starts, ends = data.get("class_starts"), data.get("class_ends")
        if starts is None and "class_starts" not in self.errors:
            self.add_error("class_starts", "Say when class hours start, e.g. 09:00.")
        if ends is None and "class_ends" not in self.errors:
            self.add_error("class_ends", "Say when class hours end, e.g. 17:00.")
        if starts is not None and ends is not None and ends <= starts:
            self.add_error(
                "class_ends",
                f"Class hours must end after they start on the same day: {starts:%H:%M} until {ends:%H:%M} "
                "is not. For a class past midnight, use the nightly stop.",
            )


NO_LIMIT = "or leave it empty for no limit"
INSTANCES_MESSAGE = (
    f"Give a whole number of instances from 0 (none allowed) to {MAX_ACCELERATED_INSTANCES:,}, {NO_LIMIT}."
)
TOKENS_MESSAGE = f"Give a whole number of tokens, 1 or more, {NO_LIMIT}."
HOURS_MESSAGE = (
    f"Give a whole number of hours from 1 to {MAX_PROJECTION_HOURS} ({MAX_PROJECTION_HOURS // 24} days), {NO_LIMIT}."
)


class SpendLimitsForm(forms.ModelForm):
    """A course's spend limits, each empty for no limit. Every refusal names the field's range."""

    class Meta:
        model = CourseSpendLimits
        fields = [
            "max_usd_per_hour",
            "max_accelerated_instances",
            "bedrock_daily_tokens",
            "bedrock_daily_usd",
            "freeze_within_hours",
        ]
        error_messages = {
            "max_accelerated_instances": {"min_value": INSTANCES_MESSAGE, "max_value": INSTANCES_MESSAGE},
            "bedrock_daily_tokens": {"min_value": TOKENS_MESSAGE, "max_value": TOKENS_MESSAGE},
            "freeze_within_hours": {"min_value": HOURS_MESSAGE, "max_value": HOURS_MESSAGE},
        }

    def clean_max_usd_per_hour(self) -> Decimal | None:
        return self._more_than_zero("max_usd_per_hour", "A limit in dollars an hour must be more than $0, e.g. 2.50")

    def clean_bedrock_daily_usd(self) -> Decimal | None:
        return self._more_than_zero("bedrock_daily_usd", "A daily Bedrock limit must be more than $0, e.g. 5")

    def clean_max_accelerated_instances(self) -> int | None:
        return self._within("max_accelerated_instances", 0, MAX_ACCELERATED_INSTANCES, INSTANCES_MESSAGE)

    def clean_bedrock_daily_tokens(self) -> int | None:
        return self._within("bedrock_daily_tokens", 1, None, TOKENS_MESSAGE)

    def clean_freeze_within_hours(self) -> int | None:
        return self._within("freeze_within_hours", 1, MAX_PROJECTION_HOURS, HOURS_MESSAGE)

    def _more_than_zero(self, name: str, message: str) -> Decimal | None:
        amount = self.cleaned_data[name]
        if amount is not None and amount <= 0:
            raise forms.ValidationError(f"{message}, {NO_LIMIT}.")
        return amount

    def _within(self, name: str, lowest: int, highest: int | None, message: str) -> int | None:
        value = self.cleaned_data[name]
        if value is not None and (value < lowest or (highest is not None and value > highest)):
            raise forms.ValidationError(message)
        return value
