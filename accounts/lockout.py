"""Sign-in throttling: django-axes' per-username-and-address lock, plus a limit per address alone.

axes counts failures per (username, address), so one address could guess 4 passwords for each of any number of
usernames without ever being locked (120 guesses over 30 usernames all went through). The same failures are
also summed per address here, over axes' cool-off window; past SIGNIN_FAILURES_PER_ADDRESS the address is
refused like a locked username (axes' lockout page, 429) until its failures age out. The limit sits well above
AXES_FAILURE_LIMIT, so people sharing an address (an office, a school) are not locked out by one typo each.
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_ip_address
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def failures_from_address(request: HttpRequest) -> int:
    address = getattr(request, "axes_ip_address", None) or get_client_ip_address(request)
    attempts = AccessAttempt.objects.filter(ip_address=address)
    if settings.AXES_COOLOFF_TIME:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    return int(attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0)


class AddressAndUsernameHandler(AxesDatabaseHandler):
    """axes' database handler, with the per-address limit checked before a sign-in (is_locked: the backend refuses
    even the right password) and after a failure (the failure that reaches the limit gets the lockout page, as
    axes does for the per-username limit)."""

    def user_login_failed(self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is not None and self._address_locked(request):
            request.axes_locked_out = True
            request.axes_credentials = credentials

    def is_locked(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> bool:
        if super().is_locked(request, credentials):
            return True
        return self._address_locked(request)

    @staticmethod
    def _address_locked(request: HttpRequest) -> bool:
        return bool(getattr(settings, "AXES_LOCK_OUT_AT_FAILURE", True)) and (
            failures_from_address(request) >= settings.SIGNIN_FAILURES_PER_ADDRESS
        )
