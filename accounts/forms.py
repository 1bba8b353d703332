"""The sign-up form: allauth's, plus the admin's email-domain policy."""

from allauth.account.adapter import get_adapter
from allauth.account.forms import SignupForm as AllauthSignupForm


class SignupForm(AllauthSignupForm):
    def clean_email(self) -> str:
        email = super().clean_email()
        return get_adapter().clean_signup_email(email)
