"""Export and import of a sandbox's event log as JSON: what a learner downloads, and the only way to bring a log in.

The file (docs/architecture.md, "Exporting and importing a log") holds a format name and version and the stream's
events in order, each with its type, schema version, payload and recorded_at; never ids (event, command,
correlation, stream or sandbox ids), so a shared file names no other learner.

An import is checked whole before anything changes (`parse_log`): the file's size, JSON shape and format
version, then each event's type, schema version, place in the order, payload, amount (the write model's rule)
and the balance folded so far (never negative). The first problem refuses the file with a message naming it
(ImportRefused), and nothing changes. A good file goes into a fresh sandbox (a reset, so Undo brings the old one
back), appended through the store's normal append in one transaction, in the file's order. Each event is
re-stamped with the moment of the import: recorded_at in the file is checked, not kept.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from lab import live, modes, sandboxes, store
from lab.engine import decider
from lab.engine.messages import AccountState, Deposited, Event, Rejected, Withdrew
from lab.engine.snapshots import is_due
from lab.engine.upcasting import LATEST_SCHEMA, UnreadableEvent, decode
from lab.models import Sandbox

FORMAT = "reqflow-lab-log"
FORMAT_VERSION = 1
EVENT_KEYS = ("version", "type", "schema_version", "payload", "recorded_at")
IMPORT_FIELD = "log"  # the multipart field of the upload
ENVELOPE_BYTES = 2 * 1024  # of the request body cap, what the multipart envelope and the form's fields may take


class ImportRefused(ValueError):
    """Why a file cannot be imported: the first problem found, for the learner. Nothing was changed."""


@dataclass(frozen=True)
class ImportedEvent:
    event: Event
    schema_version: int  # kept as the file had it: a v1 deposit stays v1 (and is upcast on read)


@dataclass(frozen=True)
class ImportResult:
    sandbox: Sandbox  # the fresh sandbox the log went into
    previous_id: uuid.UUID  # the sandbox the import replaced (Undo brings it back)
    events: int
    balance: Decimal


# --- Export ---------------------------------------------------------------------------------------------------


def export_log(sandbox: Sandbox) -> dict[str, Any]:
    """The sandbox's log as the exchange format (a dict ready for json.dumps). State-only mode has no log."""
    modes.require_event_sourced(sandbox, "export")
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "events": [
            {
                "version": row.version,
                "type": row.event_type,
                "schema_version": row.schema_version,
                "payload": row.payload,
                "recorded_at": row.recorded_at.isoformat(),
            }
            for row in store.read_stream(sandbox)
        ],
    }


def export_json(sandbox: Sandbox) -> str:
    """The file: the header fields, then one event per line (readable, and small enough to import again)."""
    document = export_log(sandbox)
    events = document.pop("events")
    head = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in document.items())
    lines = ",\n".join(f"    {json.dumps(e, ensure_ascii=False, separators=(', ', ': '))}" for e in events)
    body = f'  "events": [\n{lines}\n  ]' if events else '  "events": []'
    return f"{{\n{head},\n{body}\n}}\n"


def export_filename(now: dt.datetime | None = None) -> str:
    return f"reqflow-lab-log-{(now or timezone.now()):%Y%m%d-%H%M%S}.json"


# --- Import: the checks ----------------------------------------------------------------------------------------


def max_bytes() -> int:
    """The largest file an import takes: the site's cap on a whole request body (DATA_UPLOAD_MAX_MEMORY_SIZE, the
    same number as the server's 413 limit) less ENVELOPE_BYTES for the multipart envelope and the CSRF field, so
    a file just over it gets this module's message, not the server's 413."""
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) - ENVELOPE_BYTES


def check_size(size: int) -> None:
    cap = max_bytes()
    if size > cap:
        raise ImportRefused(f"The file is {_kib(size)}; an import takes at most {_kib(cap)}.")


def parse_log(data: bytes) -> list[ImportedEvent]:
    """Every event of an exported file, checked. Raises ImportRefused naming the first problem."""
    check_size(len(data))
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ImportRefused("The file is not UTF-8 text: export a log from the lab and import that file.") from None
    except json.JSONDecodeError as exc:
        raise ImportRefused(f"The file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
    raw_events = _events_of(document)
    state = decider.initial_state()
    parsed = []
    for number, raw in enumerate(raw_events, start=1):
        item = _check_event(number, raw, state)
        state = decider.evolve(state, item.event)
        parsed.append(item)
    return parsed


def _events_of(document: object) -> list[object]:
    if not isinstance(document, dict):
        raise ImportRefused(f'The file must hold a JSON object with "format": "{FORMAT}", not a {_kind(document)}.')
    if document.get("format") != FORMAT:
        raise ImportRefused(f'This is not a Reqflow lab log: "format" must be "{FORMAT}".')
    version = document.get("version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ImportRefused(f"The file's format version is {version!r}; this lab reads version {FORMAT_VERSION}.")
    events = document.get("events")
    if not isinstance(events, list):
        raise ImportRefused('The file has no "events" list.')
    limit = settings.LAB_MAX_EVENTS_PER_SANDBOX
    if len(events) > limit:
        raise ImportRefused(f"The file holds {len(events):,} events; a sandbox holds at most {limit:,}.")
    return events


def _check_event(number: int, raw: object, state: AccountState) -> ImportedEvent:
    """Event `number` (1-based) of the file, checked against the state folded from the events before it."""
    where = f"event {number}"
    if not isinstance(raw, dict):
        raise ImportRefused(f"{where}: must be a JSON object, not a {_kind(raw)}.")
    missing = [key for key in EVENT_KEYS if key not in raw]
    if missing:
        raise ImportRefused(f"{where}: missing {', '.join(repr(k) for k in missing)}.")
    event_type, schema = raw["type"], raw["schema_version"]
    if not isinstance(event_type, str) or event_type not in LATEST_SCHEMA:
        known = ", ".join(sorted(LATEST_SCHEMA))
        raise ImportRefused(f"{where}: unknown event type {event_type!r} (this lab knows {known}).")
    if type(schema) is not int or not 1 <= schema <= LATEST_SCHEMA[event_type]:
        versions = ", ".join(str(v) for v in range(1, LATEST_SCHEMA[event_type] + 1))
        raise ImportRefused(f"{where}: {event_type} has no schema version {schema!r} (it has {versions}).")
    if type(raw["version"]) is not int or raw["version"] != number:
        raise ImportRefused(
            f"{where}: version {raw['version']!r} is out of order (expected {number}: versions run 1, 2, 3, … "
            "in the order of the file, with no gaps)."
        )
    _check_time(where, raw["recorded_at"])
    try:
        event = decode(event_type, schema, raw["payload"])
    except UnreadableEvent as exc:
        raise ImportRefused(f"{where}: its payload cannot be read ({_shortened(str(exc))}).") from None
    _check_rules(where, event, state)
    return ImportedEvent(event=event, schema_version=schema)


def _check_time(where: str, value: object) -> None:
    try:
        parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ImportRefused(f"{where}: recorded_at {value!r} is not an ISO 8601 date and time.")


def _check_rules(where: str, event: Event, state: AccountState) -> None:
    """The write model's rules: each amount within a command's limits, and no withdrawal beyond the balance."""
    checked = decider.check_amount(event.amount)
    if isinstance(checked, Rejected):
        if checked.rule == decider.RULE_MAX:
            limit = f"${decider.MAX_AMOUNT:,.2f}"
            raise ImportRefused(f"{where}: amount {event.amount} is above the {limit} limit.")
        raise ImportRefused(f"{where}: amount {event.amount}: {checked.message}.")
    if isinstance(event, Withdrew) and event.amount > state.balance:
        raise ImportRefused(
            f"{where}: withdrawing ${event.amount:,.2f} would overdraw the account (the balance before it is "
            f"${state.balance:,.2f}); the balance may never go below zero."
        )


def _kind(value: object) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "true/false"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _shortened(text: str, limit: int = 120) -> str:
    """A reason that quotes the file, cut short: a 10 kB value is not sent back whole in the refusal."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kib(size: int) -> str:
    return f"{size / 1024:,.1f} KiB" if size % 1024 else f"{size // 1024:,} KiB"


# --- Import: into a fresh sandbox -------------------------------------------------------------------------------


def import_log(request: HttpRequest, data: bytes) -> ImportResult:
    """Check the file, then start a fresh sandbox (a reset: Undo brings the current one back) holding its events.

    All or nothing: a refused file raises ImportRefused before anything changes, and the reset and the appends
    share one transaction (store.append takes the sandbox's append lock). The projector is woken once it committed.
    """
    events = parse_log(data)
    previous = sandboxes.sandbox_for_request(request)
    session = request.session
    saved = {key: session.get(key) for key in (sandboxes.SESSION_SANDBOX, sandboxes.SESSION_UNDO)}
    try:
        with transaction.atomic():
            fresh = sandboxes.reset_sandbox(request)
            state = _append_all(fresh, events)
    except BaseException:
        for key, value in saved.items():  # the transaction rolled back: so does the session's choice
            if value is None:
                session.pop(key, None)
            else:
                session[key] = value
        raise
    return ImportResult(sandbox=fresh, previous_id=previous.pk, events=len(events), balance=state.balance)


def _append_all(sandbox: Sandbox, events: list[ImportedEvent]) -> AccountState:
    """Append the events in order, in runs that share a deposit schema (store.append stores a run's deposits in
    one schema); every run expects the version the previous one left. Inside the caller's transaction."""
    command_id = f"import-{uuid.uuid4().hex}"
    state = decider.initial_state()
    for schema, run in _runs(events):
        store.append(sandbox, run, state.version, command_id, deposit_schema=schema)
        state = decider.fold(run, state)
    if sandbox.snapshot_interval and is_due(0, state.version, sandbox.snapshot_interval):
        store.save_snapshot(sandbox, state, "auto")
    live.after_commit(sandbox.pk, "command", write_version=state.version)
    return state


def _runs(events: list[ImportedEvent]) -> list[tuple[int, list[Event]]]:
    """Consecutive events grouped by the schema their deposits are stored in (other types have schema 1 only)."""
    runs: list[tuple[int, list[Event]]] = []
    for item in events:
        if isinstance(item.event, Deposited):
            schema = item.schema_version
        else:
            schema = runs[-1][0] if runs else 1
        if not runs or runs[-1][0] != schema:
            runs.append((schema, []))
        runs[-1][1].append(item.event)
    return runs
