"""The sign-up form: allauth's, plus the admin's email-domain policy and a CSP-safe honeypot."""

from allauth.account import app_settings
from allauth.account.adapter import get_adapter
from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms


class HoneypotInput(forms.TextInput):
    """A text input that forms lay out like a hidden one: no row of its own, no label."""

    @property
    def is_hidden(self) -> bool:
        return True


class SignupForm(AllauthSignupForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        honeypot = app_settings.SIGNUP_FORM_HONEYPOT_FIELD
        if honeypot:
            # allauth hides its honeypot with an inline style attribute, which
            # the Content-Security-Policy (style-src 'self') ignores, so people
            # would see it. `hidden` needs no CSS, and keeps it from screen
            # readers and keyboards too; bots that fill every text input still
            # fill it.
            self.fields[honeypot].widget = HoneypotInput(
                attrs={"hidden": True, "tabindex": "-1", "autocomplete": "off"}
            )

    def clean_email(self) -> str:
        email = super().clean_email()
        return get_adapter().clean_signup_email(email)
