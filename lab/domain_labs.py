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
import time
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from lab import domain_commands, live, sandboxes, store
from lab.domain_inputs import COMMAND_FIELDS
from lab.domain_projections import (
    DOMAIN_LATE,
    DOMAIN_LIVE,
    GENERATION,
    late_names,
    live_names,
    open_dead_letter,
    rebuild_live,
    store_checkpoint,
    stored_states,
)
from lab.domain_types import (
    DomainEventRow,
    DomainLabView,
    DomainOutcome,
    DomainSnapshotRow,
    DomainTimeTravel,
    RestartReport,
)
from lab.engine.domains import DOMAINS
from lab.engine.domains.spec import Domain
from lab.engine.upcasting import UnreadableEvent
from lab.limits import LAG_MAX_MS
from lab.models import Checkpoint, Sandbox

__all__ = ["COMMAND_FIELDS"]

EVENT_ROWS = 50  # the newest events the lab's log shows
SNAPSHOT_ROWS = 10
TOUCH_EVERY = sandboxes.TOUCH_EVERY


def _domain(name: str) -> Domain:
    if name not in DOMAINS:
        raise ValueError(f"no domain lab is called {name!r}: one of {', '.join(DOMAINS)}")
    return DOMAINS[name]


def find_domain_sandbox(session_key: str, domain: str) -> Sandbox | None:
    """The session's current sandbox of this domain, or None. Creates nothing (for page views and sockets)."""
    _domain(domain)
    if not session_key:
        return None
    rows = Sandbox.objects.filter(session_key=session_key, domain=domain, retired_at__isnull=True)
    return rows.order_by("-last_active_at").first()


def domain_sandbox_for_command(session_key: str, domain: str, client_address: str | None) -> Sandbox:
    """The session's sandbox of this domain, created on the first command within LAB_MAX_SANDBOXES_PER_ADDRESS and
    LAB_MAX_SANDBOXES (lab.sandboxes.SandboxLimitReached past either: a 429 with Retry-After). The caller saves the
    session first, so `session_key` is set; `client_address` is REMOTE_ADDR."""
    if not session_key:
        raise ValueError("save the session first: a domain lab's sandbox is keyed by the session")
    sandbox = find_domain_sandbox(session_key, domain) or sandboxes.create_domain_sandbox(
        session_key, client_address, domain
    )
    now = timezone.now()
    if sandbox.last_active_at is None or now - sandbox.last_active_at > TOUCH_EVERY:
        Sandbox.objects.filter(pk=sandbox.pk).update(last_active_at=now)  # so the idle purge leaves it be
        sandbox.last_active_at = now
    return sandbox


# A domain sandbox is found by the session's key, which Django replaces at sign-in (against session fixation). The
# session's data survives that, so it lists the sandboxes the session made, and sign-in moves them to the new key:
# a learner who signs in keeps their ledger, order book and document.
SESSION_DOMAIN_SANDBOXES = "lab_domain_sandboxes"


def remember_domain_sandbox(session: Any, domain: str, sandbox: Sandbox) -> None:
    """Note in the session's (server-side) data that `sandbox` is this session's lab of `domain`."""
    known = session.get(SESSION_DOMAIN_SANDBOXES)
    known = dict(known) if isinstance(known, dict) else {}
    if known.get(domain) != str(sandbox.pk):
        known[domain] = str(sandbox.pk)
        session[SESSION_DOMAIN_SANDBOXES] = known


def domain_sandboxes_follow_session(session: Any) -> int:
    """At sign-in, after the session got its new key: the domain sandboxes its data lists move to that key. Only
    those (never an id from the request), and only live domain sandboxes. Returns how many moved."""
    key = session.session_key
    known = session.get(SESSION_DOMAIN_SANDBOXES)
    if not key or not isinstance(known, dict):
        return 0
    moved = 0
    for domain, sandbox_id in known.items():
        if domain not in DOMAINS:
            continue
        rows = Sandbox.objects.filter(pk=str(sandbox_id), domain=domain, retired_at__isnull=True)
        moved += rows.exclude(session_key=key).update(session_key=key)
    return moved


def send_domain_command(sandbox: Sandbox, domain: str, fields: Mapping[str, str], command_id: str) -> DomainOutcome:
    """Parse the form fields into the domain's command, decide, append, snapshot if due; one transaction under
    the sandbox's append lock. Idempotent by command_id (the first outcome again, nothing appended). Bad input is
    ok=False with `rule` "input" and `field` naming the field; nothing is appended then."""
    return domain_commands.send(sandbox, domain, fields, command_id)


def domain_lab_view(sandbox: Sandbox | None, domain: str) -> DomainLabView:
    """Everything the domain's lab shows; a blank lab (version 0, empty read models) for None."""
    spec = _domain(domain)
    if sandbox is None or sandbox._state.adding:
        return _blank(spec)
    if sandbox.domain != domain:
        raise ValueError(f"sandbox {sandbox.pk} runs {sandbox.domain!r}, not {domain!r}")
    state, snapshot_version, replayed, stalled = _write_side(sandbox, spec)
    live_version = store_checkpoint(sandbox.pk, DOMAIN_LIVE)[1]
    on = sandbox.retro_model_enabled
    names = (*live_names(spec), *(late_names(spec) if on else ()))
    rows, total, head = _log(sandbox, spec, live_version)
    return DomainLabView(
        domain=domain,
        title=spec.title,
        sandbox_id=sandbox.pk,
        write_version=head,
        read_version=live_version,
        lag_ms=sandbox.lag_ms,
        events=rows,
        event_count=total,
        state=state,
        read_models=stored_states(sandbox.pk, {name: spec.read_models[name] for name in names}),
        late_models={name: on for name in late_names(spec)},
        snapshots=_snapshots(sandbox, spec),
        snapshot_version=snapshot_version,
        events_replayed=replayed,
        paused=sandbox.projector_paused,
        snapshot_interval=sandbox.snapshot_interval,
        stalled=stalled or open_dead_letter(sandbox.pk),
        commands=COMMAND_FIELDS[domain],
    )


def _blank(spec: Domain) -> DomainLabView:
    defaults = Sandbox()
    return DomainLabView(
        domain=spec.name,
        title=spec.title,
        sandbox_id=None,
        write_version=0,
        read_version=0,
        lag_ms=defaults.lag_ms,
        events=(),
        event_count=0,
        state=spec.initial_state(),
        read_models={name: spec.read_models[name].initial() for name in live_names(spec)},
        late_models={name: False for name in late_names(spec)},
        snapshots=(),
        snapshot_version=None,
        events_replayed=0,
        paused=False,
        snapshot_interval=defaults.snapshot_interval,
        commands=COMMAND_FIELDS[spec.name],
    )


def _write_side(sandbox: Sandbox, spec: Domain) -> tuple[Any, int | None, int, str | None]:
    """(state, snapshot version, events replayed, why it cannot load): the write model as a command loads it."""
    try:
        loaded = store.load_domain(sandbox, spec)
    except UnreadableEvent as exc:
        return None, None, 0, f"the write model cannot load: {exc}"
    return loaded.state, loaded.restored.snapshot_version, loaded.restored.events_replayed, None


def _log(sandbox: Sandbox, spec: Domain, read_version: int) -> tuple[tuple[DomainEventRow, ...], int, int]:
    """The newest EVENT_ROWS events (newest first), how many the log holds, and the head version."""
    page, _, _, total = store.event_page(sandbox, 1, EVENT_ROWS, None)
    rows = tuple(
        DomainEventRow(
            e.version,
            e.event_type,
            domain_commands.describe(spec, e.event_type, e.schema_version, e.payload, e.version),
            e.recorded_at,
            e.position,
            in_flight=e.version > read_version,
        )
        for e in page
    )
    return rows, total, page[0].version if page else 0


def _snapshots(sandbox: Sandbox, spec: Domain) -> tuple[DomainSnapshotRow, ...]:
    current = spec.fingerprint()
    return tuple(
        DomainSnapshotRow(s.version, s.taken_at, s.reason, usable=s.fingerprint == current)
        for s in store.snapshots_of(sandbox, SNAPSHOT_ROWS)
    )


# --- controls ----------------------------------------------------------------------------------------------


def set_domain_lag(sandbox: Sandbox, lag_ms: int) -> DomainOutcome:
    """The projection's lag, 0 to lab.limits.LAG_MAX_MS milliseconds."""
    if isinstance(lag_ms, bool) or not isinstance(lag_ms, int) or not 0 <= lag_ms <= LAG_MAX_MS:
        return DomainOutcome(ok=False, message=f"The lag is 0 to {LAG_MAX_MS:,} ms.", rule="input", field="lag_ms")
    _update(sandbox, wake=True, lag_ms=lag_ms)
    return DomainOutcome(ok=True, message=f"The read models now lag {lag_ms / 1000:g} s behind.")


def set_domain_paused(sandbox: Sandbox, paused: bool) -> DomainOutcome:
    """Pause or resume the domain's projection (events keep being appended; the read models wait)."""
    _update(sandbox, wake=not paused, projector_paused=bool(paused))
    return DomainOutcome(ok=True, message="Projection paused." if paused else "Projection running.")


def _update(sandbox: Sandbox, *, wake: bool, **fields: Any) -> None:
    with transaction.atomic():
        Sandbox.objects.filter(pk=sandbox.pk).update(**fields)
        live.after_commit(sandbox.pk, "settings", wake=wake)
    for name, value in fields.items():
        setattr(sandbox, name, value)


def add_domain_read_model(sandbox: Sandbox, name: str) -> DomainOutcome:
    """Turn on a read model added after the fact (the ledger's "auditor"): it starts from zero and catches up
    over the whole log at the sandbox's replay pace (Sandbox.replay_rate, events a second; 0 = at once)."""
    spec = _domain(sandbox.domain)
    if name not in late_names(spec):
        return DomainOutcome(ok=False, message=f"{spec.title} has no read model {name!r} to add.", rule="input",
                             field="name")  # fmt: skip
    with transaction.atomic():
        Sandbox.objects.filter(pk=sandbox.pk).update(retro_model_enabled=True)
        Checkpoint.objects.get_or_create(sandbox_id=sandbox.pk, projection=DOMAIN_LATE, generation=GENERATION)
        live.after_commit(sandbox.pk, "settings")
    sandbox.retro_model_enabled = True
    head = store.head_version(sandbox)
    return DomainOutcome(ok=True, message=f"Added the {name}: it replays all {head:,} events from the first.",
                         version=head)  # fmt: skip


def take_domain_snapshot(sandbox: Sandbox) -> DomainOutcome:
    """Snapshot the write model at its head now."""
    spec = _domain(sandbox.domain)
    with transaction.atomic():
        store.lock_for_append(sandbox)
        try:
            loaded = store.load_domain(sandbox, spec)
        except UnreadableEvent as exc:
            return DomainOutcome(ok=False, message=f"The write model cannot load: {exc}", rule="unreadable")
        version = loaded.state.version
        if version == 0:
            return DomainOutcome(ok=False, message="Nothing to snapshot yet: the log is empty.", rule="empty")
        store.save_domain_snapshot(sandbox, spec, loaded.state, "manual")
        live.after_commit(sandbox.pk, "snapshot", wake=False)
    return DomainOutcome(ok=True, message=f"Snapshot taken at v={version}.", version=version)


def rebuild_domain_read_models(sandbox: Sandbox) -> DomainOutcome:
    """Fold the live read models again from the first event to where they were, and swap them in at once."""
    spec = _domain(sandbox.domain)
    try:
        rebuilt = rebuild_live(sandbox.pk, spec)
    except ValueError as exc:
        return DomainOutcome(ok=False, message=f"Cannot rebuild: {exc}", rule="unreadable")
    live.after_commit(sandbox.pk, "projected", read_version=rebuilt.version, swapped=True)
    same = "the same as before" if rebuilt.equal else "they differed from the stored ones, which they replace"
    return DomainOutcome(ok=True, message=f"Rebuilt from {rebuilt.events:,} events up to v={rebuilt.version}: {same}.",
                         version=rebuilt.version)  # fmt: skip


def time_travel_domain(sandbox: Sandbox, version: int | None = None, at: dt.datetime | None = None) -> DomainTimeTravel:
    """The write state and every read model as they were at `version` (clamped to 0..head), or at the moment `at`
    (the last event recorded at or before it); the head when both are None. When an event up to there cannot be
    read (a poison event), `error` says so and there is no state to show; it never raises for that."""
    spec = _domain(sandbox.domain)
    head = store.head_version(sandbox)
    if at is not None:
        version = store.version_at_time(sandbox, at)
    target = head if version is None else max(0, min(int(version), head))
    try:
        loaded = store.load_domain(sandbox, spec, target)
        events = list(store.domain_tail(sandbox, spec, 0, target))
    except UnreadableEvent as exc:
        error = f"Cannot travel to v={target}: {exc}"
        return DomainTimeTravel(target, None, None, {}, head, None, 0, error=error)
    recorded = store.read_stream(sandbox, target - 1, target) if target else []
    return DomainTimeTravel(
        version=target,
        at=recorded[0].recorded_at if recorded else None,
        state=loaded.state,
        read_models={name: model.fold(events) for name, model in spec.read_models.items()},
        head_version=head,
        snapshot_version=loaded.restored.snapshot_version,
        events_replayed=loaded.restored.events_replayed,
    )


def restart_exchange(sandbox: Sandbox) -> RestartReport:
    """Order book only: drop the in-memory book and rebuild it from the log (from the newest usable snapshot, if
    any), timing it and comparing it with the book before: the book every event folded from the first, read
    before the restart, so a snapshot that restored anything else would show as book_equal=False. A log that
    cannot be read (a poison event) rebuilds nothing: `error` says why (it never raises for that)."""
    spec = _domain(sandbox.domain)
    if spec.name != "orderbook":
        raise ValueError("only the order book has an exchange to restart")
    try:
        before = store.load_domain(sandbox, spec, use_snapshots=False).state
        started = time.perf_counter()
        after = store.load_domain(sandbox, spec, before.version)
        duration_ms = (time.perf_counter() - started) * 1000
    except UnreadableEvent as exc:
        head = store.head_version(sandbox)
        return RestartReport(0.0, False, None, 0, False, head, error=f"The log cannot be replayed: {exc}")
    return RestartReport(
        duration_ms=duration_ms,
        used_snapshot=after.restored.used_snapshot,
        snapshot_version=after.restored.snapshot_version,
        events_replayed=after.restored.events_replayed,
        book_equal=after.state == before,
        version=after.state.version,
    )
