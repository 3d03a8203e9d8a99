from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User


class SignUpForm(UserCreationForm):
    """Username and password, as Django labels them; an email address only if the learner wants to give one."""

    email = forms.EmailField(
        required=False,
        label="Email (optional)",
        help_text="Leave it blank if you like. It is kept with your account and never shown to anyone.",
    )

    # django-stubs does not declare UserCreationForm.Meta, which exists at run time.
    class Meta(UserCreationForm.Meta):  # type: ignore[name-defined]
        model = User
        fields = ("username", "email")
