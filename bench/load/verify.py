"""After a load run, against the site's own database: every accepted command's events exist exactly once, and every
read model equals a rebuild (the engine's fold of the whole stream, as lab.rebuild folds it).

Run as `python -m bench.load.verify <accepted.json>` with the database settings of the site under load (SQLITE_PATH,
or DATABASE_URL), while that site is still running: its projector has to finish the last commands first. Prints
the verdict as JSON.

What "exactly once" means here, command by command, from what the load's client recorded:
- a command answered "accepted, appended #v": one event carries its command id, at version v, and one command
  record; never zero (lost), never two (applied twice);
- a command answered "rejected" (an overdraft): its record, and no event;
- an event in a learner's stream that no answered command names: a command the client saw fail was still applied.
  Not a double application, but reported, since the learner was told it failed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

CATCH_UP_S = 60.0  # how long the projector gets to apply the last commands before the read models are compared
CHUNK = 500


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def events_by_command(ids: list[str]) -> dict[str, list[tuple[int, Any]]]:
    from lab.models import StoredEvent

    found: dict[str, list[tuple[int, Any]]] = {}
    for chunk in _chunks(ids):
        for cid, version, sandbox in StoredEvent.objects.filter(command_id__in=chunk).values_list(
            "command_id", "version", "sandbox_id"
        ):
            found.setdefault(cid, []).append((version, sandbox))
    return found


def records_by_command(ids: list[str]) -> tuple[Counter[str], set[Any]]:
    """How many command records each id has, and the sandboxes they are in (a learner whose every command was
    refused has records but no events)."""
    from lab.models import CommandRecord

    counts: Counter[str] = Counter()
    sandboxes: set[Any] = set()
    for chunk in _chunks(ids):
        for cid, sandbox in CommandRecord.objects.filter(command_id__in=chunk).values_list("command_id", "sandbox_id"):
            counts[cid] += 1
            sandboxes.add(sandbox)
    return counts, sandboxes


def check_commands(accepted: list[dict[str, Any]], rejected: list[str]) -> tuple[dict[str, int], set[Any]]:
    answered = {a["command_id"]: a["version"] for a in accepted}
    events = events_by_command(list(answered) + rejected)
    records, sandboxes = records_by_command(list(answered) + rejected)
    counts = Counter[str]()
    for cid, version in answered.items():
        mine = events.get(cid, [])
        counts["accepted_lost"] += not mine
        counts["accepted_duplicated"] += len(mine) > 1
        counts["accepted_wrong_version"] += len(mine) == 1 and mine[0][0] != version
        counts["records_not_one"] += records[cid] != 1
    for cid in rejected:
        counts["rejected_with_events"] += bool(events.get(cid))
        counts["records_not_one"] += records[cid] != 1
    sandboxes |= {sandbox for found in events.values() for _, sandbox in found}
    return dict(counts), sandboxes


def unanswered_events(sandboxes: set[Any], answered: set[str]) -> int:
    from lab.models import StoredEvent

    ids = StoredEvent.objects.filter(sandbox_id__in=list(sandboxes)).values_list("command_id", flat=True)
    return sum(1 for cid in ids if cid not in answered)


def caught_up(sandboxes: set[Any]) -> set[Any]:
    """The sandboxes whose balance model has applied every event (or wait up to CATCH_UP_S): returns those behind."""
    from django.db.models import Max

    from lab.models import BalanceView, Sandbox, StoredEvent

    deadline = time.monotonic() + CATCH_UP_S
    while True:
        heads = dict(
            StoredEvent.objects.filter(sandbox_id__in=list(sandboxes))
            .values_list("sandbox_id")
            .annotate(head=Max("version"))
        )
        live = dict(Sandbox.objects.filter(pk__in=list(sandboxes)).values_list("pk", "live_generation"))
        read = {
            (s, g): v
            for s, g, v in BalanceView.objects.filter(sandbox_id__in=list(sandboxes)).values_list(
                "sandbox_id", "generation", "version"
            )
        }
        behind = {s for s in sandboxes if read.get((s, live.get(s)), 0) < heads.get(s, 0)}
        if not behind or time.monotonic() > deadline:
            return behind
        time.sleep(0.5)


def read_model_differs(sandbox_id: Any) -> str | None:
    """None when the sandbox's live balance model and its history equal the fold of its whole stream."""
    from lab import store
    from lab.engine import projection
    from lab.models import BalanceView, HistoryLine, Sandbox

    sandbox = Sandbox.objects.get(pk=sandbox_id)
    events = [(e.position, e.version, store.domain_event(e)) for e in store.read_stream(sandbox)]
    balance, lines = projection.fold_balance(events)
    gen = sandbox.live_generation
    row = BalanceView.objects.filter(sandbox_id=sandbox_id, generation=gen).values_list("amount", "version").first()
    view = row or (Decimal(0), 0)  # no row yet is the empty model (as lab.queries reads it): no event applied
    if view != (balance.amount, balance.version):
        return f"balance {view} != fold {(balance.amount, balance.version)}"
    stored = list(
        HistoryLine.objects.filter(sandbox_id=sandbox_id, generation=gen)
        .order_by("position")
        .values_list("position", "version", "kind", "amount", "balance_after", "applied_count")
    )
    folded = [(x.position, x.version, x.kind, x.amount, x.balance_after, 1) for x in lines]
    if stored != folded:
        return f"history differs from the fold ({len(stored)} lines stored, {len(folded)} folded)"
    return None


def verify(accepted: list[dict[str, Any]], rejected: list[str]) -> dict[str, Any]:
    counts, sandboxes = check_commands(accepted, rejected)
    answered = {a["command_id"] for a in accepted} | set(rejected)
    behind = caught_up(sandboxes)
    differing = {str(s): why for s in sandboxes if (why := read_model_differs(s)) is not None}
    result: dict[str, Any] = {
        "accepted_commands": len(accepted),
        "rejected_commands": len(rejected),
        "sandboxes": len(sandboxes),
        **{k: counts.get(k, 0) for k in ("accepted_lost", "accepted_duplicated", "accepted_wrong_version")},
        "rejected_with_events": counts.get("rejected_with_events", 0),
        "records_not_one": counts.get("records_not_one", 0),
        "events_of_unanswered_commands": unanswered_events(sandboxes, answered),
        "read_models_behind_after_60s": len(behind),
        "read_models_differing_from_rebuild": len(differing),
        "first_differences": dict(list(differing.items())[:5]),
    }
    result["exact"] = not any(
        result[k]
        for k in ("accepted_lost", "accepted_duplicated", "accepted_wrong_version", "rejected_with_events",
                  "records_not_one", "read_models_behind_after_60s", "read_models_differing_from_rebuild")
    )  # fmt: skip
    return result


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reqflow.settings")
    os.environ.setdefault("EMBEDDED_PROJECTOR", "0")  # this process only reads; the site's projector does the work
    import django

    django.setup()
    outcomes = json.loads(Path(argv[0]).read_text())
    print(json.dumps(verify(outcomes["accepted"], outcomes["rejected"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
