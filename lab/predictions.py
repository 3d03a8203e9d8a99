"""Predict, then reveal: at a few moments the lab asks "what will this return?" before showing the real answer.

Each moment is asked only when the sandbox is in the situation it is about (a query while the read model trails, a
rebuild about to start, an old event after schema v2 shipped). The reveal never states a canned answer: it runs
the real read (a query, the rebuild's rule, the upcaster over the stored event) and explains what came back,
whichever choice the learner made.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lab import queries, store, timeline
from lab.models import Sandbox
from lab.types import EventView, LabState, TemplateReadable

STALE_QUERY = "stale-query"
REBUILD = "rebuild"
OLD_EVENT = "old-event"
MOMENTS = (STALE_QUERY, REBUILD, OLD_EVENT)


@dataclass(frozen=True)
class Prediction(TemplateReadable):
    moment: str
    question: str
    choices: tuple[tuple[str, str], ...]  # (value sent back, label)


@dataclass(frozen=True)
class Reveal(TemplateReadable):
    moment: str
    correct: bool
    answer: str  # what the real read returned
    why: str


def _money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def ask(state: LabState, moment: str) -> Prediction | None:
    """The question for `moment`, or None when the sandbox is not in that situation."""
    if moment == STALE_QUERY and state.read.behind > 0:
        write, read = state.write, state.read
        choices = [*sorted({_money(write.balance), _money(read.balance)}), "It waits until the read model catches up"]
        return Prediction(
            moment,
            f"The write model is at v={write.version}, the read model at v={read.version}. "
            "What will Query balance return right now?",
            tuple((c, c) for c in choices),
        )
    if moment == REBUILD and state.write.version > 0 and not state.rebuild.running:
        return Prediction(
            moment,
            "While the read model is being rebuilt from the log, what will Query balance return?",
            (
                ("empty", "$0.00: the new model starts empty"),
                ("old", f"{_money(state.read.balance)}: the current model keeps answering"),
                ("error", "An error: the read model is unavailable"),
            ),
        )
    if moment == OLD_EVENT and state.deposit_schema_version == 2 and _first_v1_deposit(state.sandbox) is not None:
        return Prediction(
            moment,
            "Deposit v2 has shipped. An old deposit is still stored as v1 (amount in dollars). "
            "What does the code see when it reads it now?",
            (
                ("stored", "The payload as stored, in dollars"),
                ("upcast", "A v2 payload: amount in cents, with a currency"),
                ("error", "An error: the code no longer knows v1"),
            ),
        )
    return None


def reveal(sandbox: Sandbox, moment: str, choice: str) -> Reveal:
    """The real answer for `moment`, judged against the learner's `choice`."""
    if moment == STALE_QUERY:
        answer = queries.query(sandbox)
        got = _money(answer.balance)
        why = (
            f"The query read the read model at v={answer.read_version} while the write model was at "
            f"v={answer.write_version}: "
            + (
                "queries never wait for the projector unless you ask them to (read your writes)."
                if answer.stale
                else "by the time you answered, the projector had caught up."
            )
        )
        return Reveal(moment, choice == got, f"It returned {got}.", why)
    if moment == REBUILD:
        got = _money(queries.query(sandbox).balance)
        why = (
            "A rebuild fills a new copy of the read model from event #1 while the current one keeps answering; "
            "they swap only once the new one has caught up (blue/green). Open Rebuild and try it."
        )
        return Reveal(moment, choice == "old", f"Queries keep returning {got} from the current model.", why)
    if moment == OLD_EVENT:
        event = _first_v1_deposit(sandbox)
        if event is None:
            return Reveal(moment, False, "There is no v1 deposit in this sandbox any more.", "")
        why = (
            f"Event #{event.version} is stored as v1 {event.raw_payload} and never rewritten; an upcaster lifts it "
            f"to {event.upcast_payload} on every read, so all the code handles one shape."
        )
        return Reveal(moment, choice == "upcast", "The code sees the v2 shape.", why)
    raise ValueError(f"Unknown moment {moment!r}.")


def _first_v1_deposit(sandbox: Sandbox) -> EventView | None:
    # One row, not a page of the log: this runs on every push once v2 has shipped, and the oldest v1 deposit may lie
    # further back than any page (the question used to vanish after 50 newer deposits).
    stored = store.first_event_of(sandbox, "Deposited", 1)
    return timeline.event_view(stored) if stored is not None else None
