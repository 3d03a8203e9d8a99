"""The domain labs' service layer: the payment ledger, the order book and the document log of "Where it shows up",
each in the learner's own sandbox, on the same store, projector and snapshots as the account lab.

A domain lab lives in a sandbox of its own (Sandbox.domain), one per browser session and domain, created by the
first command and counted against the same caps as the account's sandboxes (lab.sandboxes). Its events are stored
in the stream `<domain>-<sandbox uuid>` through the domain's own encode/decode (lab.engine.domains.spec), its read
models are JSON rows the projector keeps exactly once (lab.domain_projections), its snapshots go to the Snapshot
table. Nothing here raises for a learner's bad input: a DomainOutcome with ok=False says why.

The form fields of each command (`fields` of send_domain_command; `kind` picks the command):

ledger (lab.engine.domains.ledger):
  kind=open      account                                   -> OpenAccount(account)
  kind=deposit   account, amount, transfer_id (optional)   -> Deposit(transfer_id, account, amount)
  kind=transfer  account, to_account, amount, transfer_id (optional)
                                                           -> Transfer(transfer_id, source=account, target=to_account)
  kind=refund    transfer_id, refund_id (optional)         -> Refund(refund_id, transfer_id)
orderbook (lab.engine.domains.orderbook):
  kind=place     side=buy|sell, price (whole ticks), quantity (whole units), order_id (optional)
                                                           -> PlaceOrder(order_id, side, price, quantity)
  kind=cancel    order_id                                  -> CancelOrder(order_id)
document (lab.engine.domains.document):
  kind=insert    tab, base_version, position, text         -> Insert(tab, base_version, position, text)
  kind=delete    tab, base_version, position, length       -> Delete(tab, base_version, position, length)

Every command also takes `expected_version` (optional): the stream version the learner saw; a different head is
refused with rule "concurrency" (optimistic concurrency per stream; the document log's edits carry base_version
instead, and are rebased by the engine's rule). An id left out (transfer_id, refund_id, order_id) is made from
the stream version, so a form can omit it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from lab.domain_types import DomainLabView, DomainOutcome, DomainTimeTravel, RestartReport
from lab.models import Sandbox

# kind -> its form field names, per domain (what the docstring above lists; the panel draws its forms from it)
COMMAND_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "ledger": {
        "open": ("account",),
        "deposit": ("account", "amount", "transfer_id"),
        "transfer": ("account", "to_account", "amount", "transfer_id"),
        "refund": ("transfer_id", "refund_id"),
    },
    "orderbook": {"place": ("side", "price", "quantity", "order_id"), "cancel": ("order_id",)},
    "document": {
        "insert": ("tab", "base_version", "position", "text"),
        "delete": ("tab", "base_version", "position", "length"),
    },
}


def find_domain_sandbox(session_key: str, domain: str) -> Sandbox | None:
    """The session's current sandbox of this domain, or None. Creates nothing (for page views and sockets)."""
    raise NotImplementedError


def domain_sandbox_for_command(session_key: str, domain: str, client_address: str | None) -> Sandbox:
    """The session's sandbox of this domain, created on the first command within LAB_MAX_SANDBOXES_PER_ADDRESS and
    LAB_MAX_SANDBOXES (lab.sandboxes.SandboxLimitReached past either: a 429 with Retry-After). The caller saves the
    session first, so `session_key` is set; `client_address` is REMOTE_ADDR."""
    raise NotImplementedError


def send_domain_command(sandbox: Sandbox, domain: str, fields: Mapping[str, str], command_id: str) -> DomainOutcome:
    """Parse the form fields into the domain's command, decide, append, snapshot if due; one transaction under
    the sandbox's append lock. Idempotent by command_id (the first outcome again, nothing appended)."""
    raise NotImplementedError


def domain_lab_view(sandbox: Sandbox | None, domain: str) -> DomainLabView:
    """Everything the domain's lab shows; a blank lab (version 0, empty read models) for None."""
    raise NotImplementedError


def set_domain_lag(sandbox: Sandbox, lag_ms: int) -> DomainOutcome:
    """The projection's lag, 0 to lab.limits.LAG_MAX_MS milliseconds."""
    raise NotImplementedError


def set_domain_paused(sandbox: Sandbox, paused: bool) -> DomainOutcome:
    """Pause or resume the domain's projection (events keep being appended; the read models wait)."""
    raise NotImplementedError


def add_domain_read_model(sandbox: Sandbox, name: str) -> DomainOutcome:
    """Turn on a read model added after the fact (the ledger's "auditor"): it starts from zero and catches up
    over the whole log at the projector's pace."""
    raise NotImplementedError


def take_domain_snapshot(sandbox: Sandbox) -> DomainOutcome:
    """Snapshot the write model at its head now."""
    raise NotImplementedError


def rebuild_domain_read_models(sandbox: Sandbox) -> DomainOutcome:
    """Fold the live read models again from the first event to where they were, and swap them in at once."""
    raise NotImplementedError


def time_travel_domain(sandbox: Sandbox, version: int | None = None, at: dt.datetime | None = None) -> DomainTimeTravel:
    """The write state and read models as they were at `version`, or at the moment `at` (the last event recorded
    at or before it); the head when both are None."""
    raise NotImplementedError


def restart_exchange(sandbox: Sandbox) -> RestartReport:
    """Order book only: drop the in-memory book and rebuild it from the log (from the newest usable snapshot, if
    any), timing it and comparing it with the book before."""
    raise NotImplementedError
