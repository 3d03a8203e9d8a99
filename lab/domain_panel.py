"""A domain lab's state → what templates/lab/domain/lab.html draws, and its parts rendered for htmx.

The page, every answer and every refresh render the same partials of one template, so an answer and the page it
lands on cannot disagree. A partial's name is the id of its root element; `oob` marks an out-of-band copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from lab.domain_catalog import LABS, DomainLab
from lab.domain_types import DomainLabView, DomainTimeTravel, RestartReport
from lab.engine.domains.ledger import EXTERNAL
from lab.types import Reasons

TEMPLATE = "lab/domain/lab.html"
PAGE = "lab/domain/page.html"
# What a refresh or an answer brings along, so the whole read side is current after any request.
LIVE_PARTS = ("dlab-status", "dlab-write", "dlab-log", "dlab-read", "dlab-snapshots", "dlab-lists")
SUGGESTED_ACCOUNTS = ("alice", "bob", "carol", "dave")
FLASH_KEY = "domain_lab_flash"  # a no-JavaScript form's outcome, kept in the session for the one render after it


@dataclass
class DomainPanel:
    view: DomainLabView
    lab: DomainLab
    command_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # a fresh one per render: idempotent retries
    tab: str = field(default_factory=lambda: f"tab{secrets.token_hex(2)}")  # this page's name in the document log
    slot: str | None = None  # the result slot that answers (a control's id), and what it says
    message: dict[str, Any] | None = None
    values: dict[str, str] = field(default_factory=Reasons)  # a refused form's input, shown again
    time_travel: DomainTimeTravel | None = None
    restart: RestartReport | None = None

    def __post_init__(self) -> None:
        # The forms ask for every field's earlier input; as Reasons a name never given answers "" directly
        # instead of through the template language's failed-lookup path. Callers may pass a plain dict.
        if not isinstance(self.values, Reasons):
            self.values = Reasons(self.values)

    @property
    def domain(self) -> str:
        return self.view.domain

    @property
    def stamp(self) -> str:
        """Changes whenever anything the live parts show changes: a refresh that finds it equal answers 204."""
        return hashlib.sha256(repr(self.view).encode()).hexdigest()[:16]

    @property
    def balance_then(self) -> tuple[str, Any] | None:
        """The ledger's time-travel question "what was the balance of A then?": (A, its balance in the balances
        read model as of that version, or None if A was not open yet). None when no account was asked about."""
        account = self.values.get("account", "")
        if self.time_travel is None or not account:
            return None
        balances = self.time_travel.read_models.get("balances")
        return account, getattr(balances, "amounts", {}).get(account)

    @property
    def due_ms(self) -> int | None:
        """Milliseconds until the oldest event in flight is due for the read models (its time plus the lag), so the
        page asks again then rather than on a blind beat; None when nothing is in flight."""
        pending = [row.recorded_at for row in self.view.events if row.in_flight]
        if not pending or self.view.paused:
            return None
        due = min(pending) + dt.timedelta(milliseconds=self.view.lag_ms) - timezone.now()
        return max(0, int(due.total_seconds() * 1000))

    @property
    def lag_s(self) -> str:
        return f"{self.view.lag_ms / 1000:.1f}"

    # What the domain's forms offer (names to pick from); read from the write model, which is never behind.

    @cached_property  # asked several times per render: the datalist, the suggested accounts, the next name
    def accounts(self) -> list[str]:
        """The ledger's customer accounts, by name."""
        balances = getattr(self.view.state, "balances", {})
        return sorted(name for name in balances if name != EXTERNAL)

    @property
    def first_account(self) -> str:
        """The account a deposit or transfer form suggests first ("" before any is open)."""
        accounts = self.accounts
        return accounts[0] if accounts else ""

    @property
    def second_account(self) -> str:
        """The account a transfer form suggests as its other side ("" until two are open)."""
        accounts = self.accounts
        return accounts[1] if len(accounts) > 1 else ""

    @property
    def next_account(self) -> str:
        """A name to offer in the "open an account" field, so a first visit can just press Open."""
        return next((name for name in SUGGESTED_ACCOUNTS if name not in self.accounts), "")

    @property
    def refundable(self) -> list[str]:
        return sorted(getattr(self.view.state, "refundable", {}))

    @property
    def resting(self) -> list[Any]:
        """The order book's resting orders, oldest first."""
        return sorted(getattr(self.view.state, "resting", {}).values(), key=lambda order: order.since)

    @property
    def template_of(self) -> dict[str, str]:
        """The domain's own partials (its commands, write model and read models)."""
        return {part: f"lab/domain/_{self.domain}_{part}.html" for part in ("commands", "write", "read")}


def build(domain: str, view: DomainLabView, **extra: Any) -> DomainPanel:
    return DomainPanel(view=view, lab=LABS[domain], **extra)


def render_parts(
    panel: DomainPanel, names: tuple[str, ...], *, main: str | None = None, request: HttpRequest | None = None
) -> str:
    """The main partial (swapped into the element htmx targets), then the others out of band."""
    chunks = []
    if main:
        chunks.append(render_to_string(f"{TEMPLATE}#{main}", {"dlab": panel, "oob": False}, request=request))
    for name in names:
        if name != main:
            chunks.append(render_to_string(f"{TEMPLATE}#{name}", {"dlab": panel, "oob": True}, request=request))
    return "\n".join(chunks)


def render_page(request: HttpRequest, panel: DomainPanel) -> str:
    return render_to_string(PAGE, {"dlab": panel, "oob": False}, request=request)  # see lab.templatetags.lab_panel
