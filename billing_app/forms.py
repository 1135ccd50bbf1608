from decimal import Decimal

from django import forms


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
