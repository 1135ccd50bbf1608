from decimal import Decimal

from django import forms

from billing_app.models import CourseSpendLimits

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
