"""The lab's receivers of other apps' signals: the sandbox follows a learner across sign-in.

It lives here, not in `accounts`, so that accounts knows nothing of the lab (an import-linter contract).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from lab.domain_labs import domain_sandboxes_follow_session
from lab.missions import carry_to_account
from lab.sandboxes import adopt_session_sandbox, current_sandbox


@receiver(user_logged_in, dispatch_uid="lab.missions_follow_account")
def missions_follow_account(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # Connected before the sandbox moves (receivers run in the order they connect): the visitor's sandbox still
    # names the browser session whose missions met become the account's.
    if request is not None and hasattr(request, "session"):
        visitor = current_sandbox(request.session, None)
        if visitor is not None:
            carry_to_account(visitor.session_key, user)


@receiver(user_logged_in, dispatch_uid="lab.sandbox_follows_account")
def sandbox_follows_account(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # Sign-in (and the automatic sign-in after sign-up) hands the visitor's lab sandbox to the account, or
    # gives the account's sandbox back, so a lab survives sign-out and sign-in on any browser.
    if request is not None and hasattr(request, "session"):
        adopt_session_sandbox(request, user)
        domain_sandboxes_follow_session(request.session)  # the domain labs are keyed by the (new) session key
