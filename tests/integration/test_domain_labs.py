"""The domain labs (issue 14) on the real store, projector and snapshots: a payment ledger, an order book and a
document log, each in a sandbox of its own, through the service layer lab.domain_labs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from lab import domain_labs as labs
from lab import sandboxes, store
from lab.engine.domains import DOMAINS
from lab.engine.store import Metadata, NewEvent
from lab.models import ACCOUNT, CommandRecord, DeadLetter, DomainReadModel, Sandbox, Snapshot, StoredEvent
from lab.projector import drain
from lab.sandboxes import SandboxLimitReached
from tests.integration.lab_events import eventually

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

ADDRESS = "203.0.113.7"


def lab(domain: str, session: str = "session-1", **settings) -> Sandbox:
    sandbox = labs.domain_sandbox_for_command(session, domain, ADDRESS)
    Sandbox.objects.filter(pk=sandbox.pk).update(**{"lag_ms": 0, **settings})
    sandbox.refresh_from_db()
    return sandbox


def send(sandbox: Sandbox, command_id: str | None = None, **fields: str):
    return labs.send_domain_command(sandbox, sandbox.domain, fields, command_id or uuid.uuid4().hex)


def folded(sandbox: Sandbox, name: str):
    """A read model folded by the engine straight from the stored log: what the projector must have stored."""
    domain = DOMAINS[sandbox.domain]
    return domain.read_models[name].fold(store.domain_tail(sandbox, domain, 0, None))


def events_of(sandbox: Sandbox) -> list[str]:
    return list(
        StoredEvent.objects.filter(sandbox_id=sandbox.pk).order_by("position").values_list("event_type", flat=True)
    )


def open_ledger(sandbox: Sandbox) -> None:
    for account in ("alice", "bob"):
        assert send(sandbox, kind="open", account=account).ok
    assert send(sandbox, kind="deposit", account="alice", amount="100", transfer_id="d1").ok


# --- one command per domain appends and projects -----------------------------------------------------------


def test_a_ledger_transfer_is_balanced_entries_and_the_balances_follow_by_projection():
    sandbox = lab("ledger")
    open_ledger(sandbox)
    outcome = send(sandbox, kind="transfer", account="alice", to_account="bob", amount="30", transfer_id="t1")
    assert outcome.ok and outcome.version == 4
    assert [e.summary for e in outcome.events] == ["t1: alice -30.00, bob +30.00"]
    row = StoredEvent.objects.get(sandbox_id=sandbox.pk, version=4)
    assert row.stream_id == f"ledger-{sandbox.pk}" and row.event_type == "Transferred"
    view = labs.domain_lab_view(sandbox, "ledger")
    assert (view.write_version, view.read_version) == (4, 0)  # appended; the projection has not run yet
    assert drain([sandbox.pk]) == 4
    view = labs.domain_lab_view(sandbox, "ledger")
    assert (view.write_version, view.read_version, view.behind) == (4, 4, 0)
    assert view.read_models["balances"] == folded(sandbox, "balances")
    assert view.read_models["balances"].amounts == {"external": Decimal(-100), "alice": Decimal(70), "bob": Decimal(30)}
    assert view.read_models["journal"] == folded(sandbox, "journal")
    assert "auditor" not in view.read_models and view.late_models == {"auditor": False}
    assert view.state.balances == view.read_models["balances"].amounts


def test_an_order_book_matches_in_price_time_priority_and_its_read_models_follow():
    sandbox = lab("orderbook")
    assert send(sandbox, kind="place", side="sell", price="101", quantity="5", order_id="s1").ok
    assert send(sandbox, kind="place", side="sell", price="101", quantity="5", order_id="s2").ok
    outcome = send(sandbox, kind="place", side="buy", price="102", quantity="7", order_id="b1")
    assert outcome.ok
    assert [e.event_type for e in outcome.events] == ["OrderPlaced", "TradeExecuted", "TradeExecuted"]
    assert [e.summary for e in outcome.events[1:]] == ["trade 5 @ 101 (b1 took s1)", "trade 2 @ 101 (b1 took s2)"]
    drain([sandbox.pk])
    view = labs.domain_lab_view(sandbox, "orderbook")
    assert view.read_version == view.write_version == 7
    assert view.read_models["order_book"] == folded(sandbox, "order_book")
    assert [(level.price, level.quantity) for level in view.read_models["order_book"].asks()] == [(101, 3)]
    assert view.read_models["last_price"].price == 101 and view.read_models["last_price"].volume == 7


def test_a_document_edit_appends_an_operation_and_the_text_follows():
    sandbox = lab("document")
    assert send(sandbox, kind="insert", tab="A", base_version="0", position="0", text="hello").ok
    assert send(sandbox, kind="delete", tab="A", base_version="1", position="0", length="1").ok
    drain([sandbox.pk])
    view = labs.domain_lab_view(sandbox, "document")
    assert view.state.text == view.read_models["text"].text == "ello"
    assert view.read_models["text"] == folded(sandbox, "text")


def test_the_projection_lags_and_the_log_marks_what_is_in_flight():
    sandbox = lab("document", lag_ms=10_000)
    send(sandbox, kind="insert", tab="A", base_version="0", position="0", text="hi")
    assert drain([sandbox.pk]) == 0
    view = labs.domain_lab_view(sandbox, "document")
    assert (view.write_version, view.read_version, view.lag_ms) == (1, 0, 10_000)
    assert view.events[0].in_flight and view.projector_state == "catching up"
    assert labs.set_domain_lag(sandbox, 0).ok
    assert drain([sandbox.pk]) == 1
    assert not labs.domain_lab_view(sandbox, "document").events[0].in_flight


def test_a_paused_projection_waits_and_resumes_where_it_was():
    sandbox = lab("ledger")
    labs.set_domain_paused(sandbox, True)
    open_ledger(sandbox)
    assert drain([sandbox.pk]) == 0
    assert labs.domain_lab_view(sandbox, "ledger").projector_state == "paused"
    labs.set_domain_paused(sandbox, False)
    assert drain([sandbox.pk]) == 3


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_the_projector_loop_projects_a_domain_sandbox_and_then_leaves_it_alone(running):
    from asgiref.sync import sync_to_async

    sandbox = await sync_to_async(lab)("ledger")
    running()
    await sync_to_async(open_ledger)(sandbox)
    await eventually(lambda: labs.domain_lab_view(sandbox, "ledger").read_version == 3)
    assert sandbox.pk not in await sync_to_async(store.pending_sandboxes)()


# --- rules: rejected whole, appended nothing -----------------------------------------------------------------


def test_an_overdrawing_transfer_is_rejected_whole_and_appends_nothing():
    sandbox = lab("ledger")
    open_ledger(sandbox)
    before = events_of(sandbox)
    outcome = send(sandbox, kind="transfer", account="alice", to_account="bob", amount="100.01")
    assert not outcome.ok and outcome.rule == "no-overdraft" and outcome.version == 3
    assert outcome.message == "Rejected: would overdraw an account: nothing of it was posted"
    assert events_of(sandbox) == before


def test_a_refund_posts_new_reverse_entries_and_edits_nothing():
    sandbox = lab("ledger")
    open_ledger(sandbox)
    send(sandbox, kind="transfer", account="alice", to_account="bob", amount="40", transfer_id="t1")
    first = StoredEvent.objects.get(sandbox_id=sandbox.pk, version=4).payload
    outcome = send(sandbox, kind="refund", transfer_id="t1")
    assert outcome.ok and outcome.events[0].summary == "r5 refunds t1: alice +40.00, bob -40.00"
    assert StoredEvent.objects.get(sandbox_id=sandbox.pk, version=4).payload == first
    drain([sandbox.pk])
    assert labs.domain_lab_view(sandbox, "ledger").read_models["balances"].amounts["alice"] == Decimal(100)


def test_a_stale_expected_version_is_a_concurrency_refusal_and_appends_nothing():
    sandbox = lab("orderbook")
    send(sandbox, kind="place", side="buy", price="10", quantity="1")
    outcome = send(sandbox, kind="place", side="buy", price="11", quantity="1", expected_version="0")
    assert not outcome.ok and outcome.rule == "concurrency" and outcome.version == 2
    assert len(events_of(sandbox)) == 2
    assert send(sandbox, kind="place", side="buy", price="11", quantity="1", expected_version="2").ok


@pytest.mark.parametrize(
    ("domain", "fields", "field"),
    [
        ("ledger", {"kind": "deposit", "account": "alice"}, "amount"),
        ("ledger", {"kind": "deposit", "account": "alice", "amount": "abc"}, "amount"),
        ("ledger", {"kind": "transfer", "account": "alice", "amount": "1"}, "to_account"),
        ("ledger", {"kind": "fly"}, "kind"),
        ("ledger", {}, "kind"),
        ("ledger", {"kind": "open", "account": "a" * 500}, "account"),
        ("orderbook", {"kind": "place", "side": "both", "price": "1", "quantity": "1"}, "side"),
        ("orderbook", {"kind": "place", "side": "buy", "price": "1.5", "quantity": "1"}, "price"),
        ("orderbook", {"kind": "place", "side": "buy", "price": "1", "quantity": "x"}, "quantity"),
        ("orderbook", {"kind": "cancel"}, "order_id"),
        (
            "document",
            {"kind": "insert", "tab": "A", "base_version": "one", "position": "0", "text": "x"},
            "base_version",
        ),
        ("document", {"kind": "delete", "tab": "A", "base_version": "0", "position": "0"}, "length"),
        ("document", {"kind": "insert", "base_version": "0", "position": "0", "text": "x"}, "tab"),
        ("document", {"kind": "insert", "tab": "A", "base_version": "0", "position": "0", "text": ""}, "text"),
        ("ledger", {"kind": "open", "account": "carol", "expected_version": "soon"}, "expected_version"),
    ],
)
def test_bad_input_is_a_refusal_naming_the_field_never_an_exception_and_appends_nothing(domain, fields, field):
    sandbox = lab(domain)
    outcome = labs.send_domain_command(sandbox, domain, fields, "cmd-1")
    assert not outcome.ok and outcome.rule == "input" and outcome.field == field, outcome
    assert field in outcome.message
    assert events_of(sandbox) == []
    assert not CommandRecord.objects.filter(sandbox_id=sandbox.pk).exists()  # so the same id may try again


def test_a_bad_command_id_is_a_refusal():
    sandbox = lab("ledger")
    outcome = labs.send_domain_command(sandbox, "ledger", {"kind": "open", "account": "alice"}, "no spaces!")
    assert not outcome.ok and outcome.field == "command_id" and events_of(sandbox) == []


def test_engine_rules_come_back_with_their_key_and_message():
    sandbox = lab("document")
    outcome = send(sandbox, kind="insert", tab="A", base_version="0", position="3", text="x")
    assert not outcome.ok and outcome.rule == "edit-range" and events_of(sandbox) == []


# --- idempotency ----------------------------------------------------------------------------------------------


def test_the_same_command_id_again_returns_the_first_outcome_and_appends_nothing():
    sandbox = lab("orderbook")
    first = send(sandbox, "same-id", kind="place", side="sell", price="50", quantity="3", order_id="x1")
    again = send(sandbox, "same-id", kind="place", side="sell", price="50", quantity="3", order_id="x1")
    assert first.ok and again.ok and again.replayed and not first.replayed
    assert again.events == first.events and again.version == first.version == 2
    assert len(events_of(sandbox)) == 2
    # Made-up ids come from the stream version, so a retry of an id-less command must not make a second order.
    auto = send(sandbox, "auto-id", kind="place", side="buy", price="10", quantity="1")
    assert send(sandbox, "auto-id", kind="place", side="buy", price="10", quantity="1").replayed
    assert len(events_of(sandbox)) == 2 + len(auto.events)


def test_a_rejected_command_is_rejected_again_by_its_id_and_another_command_under_it_is_refused():
    sandbox = lab("ledger")
    open_ledger(sandbox)
    rejected = send(sandbox, "c1", kind="transfer", account="bob", to_account="alice", amount="5")
    assert rejected.rule == "no-overdraft"
    send(sandbox, kind="transfer", account="alice", to_account="bob", amount="50")  # bob could pay now
    again = send(sandbox, "c1", kind="transfer", account="bob", to_account="alice", amount="5")
    assert again.replayed and again.rule == "no-overdraft"
    reused = send(sandbox, "c1", kind="transfer", account="bob", to_account="alice", amount="6")
    assert not reused.ok and reused.rule == "id_reused" and not reused.replayed


# --- the order book's restart ---------------------------------------------------------------------------------


def place_orders(sandbox: Sandbox, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        side = "buy" if i % 2 else "sell"
        price = 100 + (i % 7) - 3 if side == "sell" else 100 - (i % 5) + 1
        assert send(sandbox, kind="place", side=side, price=str(price), quantity=str(1 + i % 4), order_id=f"o{i}").ok
    assert send(sandbox, kind="cancel", order_id=_resting_id(sandbox)).ok


def _resting_id(sandbox: Sandbox) -> str:
    state = store.load_domain(sandbox, DOMAINS["orderbook"]).state
    return sorted(state.resting)[0]


def test_restarting_the_exchange_without_a_snapshot_replays_every_event_into_an_equal_book():
    sandbox = lab("orderbook", snapshot_interval=0)
    place_orders(sandbox, 20)
    head = store.head_version(sandbox)
    report = labs.restart_exchange(sandbox)
    assert report.book_equal and report.version == head
    assert not report.used_snapshot and report.snapshot_version is None and report.events_replayed == head
    assert report.duration_ms > 0


def test_restarting_the_exchange_from_a_snapshot_replays_only_the_tail_into_an_equal_book():
    sandbox = lab("orderbook", snapshot_interval=0)
    place_orders(sandbox, 12)
    snapped = labs.take_domain_snapshot(sandbox)
    assert snapped.ok
    place_orders(sandbox, 5, start=12)
    head = store.head_version(sandbox)
    report = labs.restart_exchange(sandbox)
    assert report.used_snapshot and report.snapshot_version == snapped.version
    assert report.events_replayed == head - snapped.version > 0
    assert report.book_equal and report.version == head
    drain([sandbox.pk])
    rebuilt = store.load_domain(sandbox, DOMAINS["orderbook"]).state
    assert labs.domain_lab_view(sandbox, "orderbook").read_models["order_book"].resting == rebuilt.resting


def test_a_snapshot_that_no_longer_fits_the_code_is_passed_over_and_the_book_is_still_equal():
    sandbox = lab("orderbook", snapshot_interval=0)
    place_orders(sandbox, 8)
    labs.take_domain_snapshot(sandbox)
    Snapshot.objects.filter(sandbox_id=sandbox.pk).update(fingerprint="older-code")
    report = labs.restart_exchange(sandbox)
    assert not report.used_snapshot and report.book_equal
    assert [s.usable for s in labs.domain_lab_view(sandbox, "orderbook").snapshots] == [False]


def test_a_damaged_snapshot_is_passed_over_for_an_older_usable_one():
    sandbox = lab("orderbook", snapshot_interval=0)
    place_orders(sandbox, 6)
    older = labs.take_domain_snapshot(sandbox).version
    place_orders(sandbox, 4, start=6)
    newer = labs.take_domain_snapshot(sandbox).version
    Snapshot.objects.filter(sandbox_id=sandbox.pk, version=newer).update(state={"version": newer, "resting": "torn"})
    report = labs.restart_exchange(sandbox)
    assert report.used_snapshot and report.snapshot_version == older
    assert report.events_replayed == newer - older and report.book_equal
    assert store.load_domain(sandbox, DOMAINS["orderbook"]).stale_snapshot_seen


def test_automatic_snapshots_follow_the_interval_and_the_write_model_loads_from_the_newest():
    sandbox = lab("document", snapshot_interval=3)
    for version in range(7):
        assert send(sandbox, kind="insert", tab="A", base_version=str(version), position="0", text="ab"[version % 2]).ok
    view = labs.domain_lab_view(sandbox, "document")
    assert [s.version for s in view.snapshots] == [6, 3]
    assert (view.snapshot_version, view.events_replayed) == (6, 1)  # "snapshot v6 + 1 operation replayed"


def test_a_domain_stream_keeps_only_its_newest_snapshots():
    from lab.store.domains import SNAPSHOTS_KEPT

    sandbox = lab("document", snapshot_interval=1)
    for version in range(SNAPSHOTS_KEPT + 5):
        assert send(sandbox, kind="insert", tab="A", base_version=str(version), position="0", text="x").ok
    kept = list(Snapshot.objects.filter(sandbox_id=sandbox.pk).order_by("-version").values_list("version", flat=True))
    assert kept == list(range(SNAPSHOTS_KEPT + 5, 5, -1))
    travel = labs.time_travel_domain(sandbox, version=3)  # before every kept snapshot: folded from the start
    assert travel.snapshot_version is None and travel.events_replayed == 3 and travel.state.text == "xxx"


def test_restart_is_for_the_order_book_only():
    with pytest.raises(ValueError, match="order book"):
        labs.restart_exchange(lab("ledger"))


# --- two tabs on the same version converge --------------------------------------------------------------------


def two_tabs(session: str, edits: dict[str, dict[str, str]], order: tuple[str, str]):
    """Tab A's and tab B's edits, both made on version 1 of "hello world", arriving in `order`."""
    sandbox = lab("document", session=session)
    assert send(sandbox, kind="insert", tab="A", base_version="0", position="0", text="hello world").ok
    outcomes = {tab: send(sandbox, **edits[tab]) for tab in order}
    drain([sandbox.pk])
    view = labs.domain_lab_view(sandbox, "document")
    assert view.read_models["text"].text == view.state.text  # the read side converges on the write side too
    return view.state.text, outcomes


def test_two_tabs_editing_the_same_version_converge_whatever_arrives_first():
    edits = {
        "A": {"kind": "insert", "tab": "A", "base_version": "1", "position": "11", "text": "!"},
        "B": {"kind": "delete", "tab": "B", "base_version": "1", "position": "0", "length": "6"},
    }
    text_ab, outcomes_ab = two_tabs("s-ab", edits, ("A", "B"))
    text_ba, outcomes_ba = two_tabs("s-ba", edits, ("B", "A"))
    assert text_ab == text_ba == "world!"
    assert all(o.ok for o in (*outcomes_ab.values(), *outcomes_ba.values()))
    # The later edit was rebased: A's insert at 11 of version 1 went in at 5 of version 2 when B came first.
    assert outcomes_ba["A"].events[0].summary == "tab A inserts '!' at 5 (on v1)"


def test_an_edit_inside_text_deleted_concurrently_loses_and_the_tabs_still_converge():
    """The stated rule, delete wins: B removed "hello " while A typed a comma inside it. Arriving first, A's comma
    is swallowed by B's rebased delete; arriving second, it is refused as edit-already-gone. Same text either way."""
    edits = {
        "A": {"kind": "insert", "tab": "A", "base_version": "1", "position": "5", "text": ","},
        "B": {"kind": "delete", "tab": "B", "base_version": "1", "position": "0", "length": "6"},
    }
    text_ab, outcomes_ab = two_tabs("s-ab", edits, ("A", "B"))
    text_ba, outcomes_ba = two_tabs("s-ba", edits, ("B", "A"))
    assert text_ab == text_ba == "world"
    assert outcomes_ab["B"].events[0].summary == "tab B deletes 7 at 0 (on v1)"
    assert not outcomes_ba["A"].ok and outcomes_ba["A"].rule == "edit-already-gone"


def test_concurrent_inserts_at_one_place_go_in_tab_order_from_either_arrival():
    texts = []
    for order in (("A", "B"), ("B", "A")):
        sandbox = lab("document", session="s-" + "".join(order))
        send(sandbox, kind="insert", tab="A", base_version="0", position="0", text="xy")
        for tab in order:
            assert send(sandbox, kind="insert", tab=tab, base_version="1", position="1", text=tab.lower()).ok
        drain([sandbox.pk])
        view = labs.domain_lab_view(sandbox, "document")
        assert view.read_models["text"].text == view.state.text
        texts.append(view.state.text)
    assert texts[0] == texts[1] == "xaby"


def test_an_insert_inside_a_range_deleted_concurrently_is_rejected_with_that_reason():
    sandbox = lab("document")
    send(sandbox, kind="insert", tab="A", base_version="0", position="0", text="abcdef")
    assert send(sandbox, kind="delete", tab="B", base_version="1", position="1", length="4").ok
    outcome = send(sandbox, kind="insert", tab="A", base_version="1", position="3", text="X")
    assert not outcome.ok and outcome.rule == "edit-already-gone"
    assert store.load_domain(sandbox, DOMAINS["document"]).state.text == "af"


# --- the auditor, added after the fact --------------------------------------------------------------------------


def test_the_auditor_added_after_the_fact_catches_up_over_the_whole_log_and_reconciles_to_zero():
    sandbox = lab("ledger", replay_rate=0)
    open_ledger(sandbox)
    send(sandbox, kind="transfer", account="alice", to_account="bob", amount="25", transfer_id="t1")
    send(sandbox, kind="refund", transfer_id="t1")
    send(sandbox, kind="transfer", account="alice", to_account="external", amount="10", transfer_id="payout")
    drain([sandbox.pk])
    assert not DomainReadModel.objects.filter(sandbox_id=sandbox.pk, name="auditor").exists()
    added = labs.add_domain_read_model(sandbox, "auditor")
    assert added.ok and added.version == 6
    drain([sandbox.pk])
    view = labs.domain_lab_view(sandbox, "ledger")
    audit = view.read_models["auditor"]
    assert view.late_models == {"auditor": True}
    assert audit.version == 6 and audit == folded(sandbox, "auditor")
    assert audit.reconciled and audit.total == 0 and audit.postings_checked == 4
    assert audit.accounts["external"] == Decimal(-90)


def test_the_auditor_replays_at_the_sandboxs_pace():
    sandbox = lab("ledger", replay_rate=1)
    open_ledger(sandbox)
    drain([sandbox.pk])
    labs.add_domain_read_model(sandbox, "auditor")
    drain([sandbox.pk])  # one event at once, then one a second
    assert labs.domain_lab_view(sandbox, "ledger").read_models["auditor"].version == 1


def test_only_a_late_read_model_can_be_added():
    outcome = labs.add_domain_read_model(lab("orderbook"), "auditor")
    assert not outcome.ok and outcome.field == "name"


# --- time travel ------------------------------------------------------------------------------------------------


def test_time_travel_by_version_and_by_time_shows_the_balance_as_it_was():
    sandbox = lab("ledger")
    open_ledger(sandbox)  # alice 100
    time.sleep(0.02)
    moment = timezone.now()
    time.sleep(0.02)
    send(sandbox, kind="transfer", account="alice", to_account="bob", amount="60")
    at_moment = labs.time_travel_domain(sandbox, at=moment)
    assert at_moment.version == 3 and at_moment.head_version == 4
    assert at_moment.state.balances["alice"] == Decimal(100)
    assert at_moment.read_models["balances"].amounts["alice"] == Decimal(100)
    assert at_moment.at is not None and at_moment.at <= moment
    by_version = labs.time_travel_domain(sandbox, version=2)
    assert set(by_version.state.balances) == {"external", "alice", "bob"} and by_version.state.balances["alice"] == 0
    assert labs.time_travel_domain(sandbox).state.balances["alice"] == Decimal(40)
    assert labs.time_travel_domain(sandbox, version=99).version == 4
    before_all = labs.time_travel_domain(sandbox, at=moment - dt.timedelta(days=1))
    assert before_all.version == 0 and before_all.at is None


def test_time_travel_restores_from_a_snapshot_below_the_version():
    sandbox = lab("document", snapshot_interval=2)
    for version in range(5):
        send(sandbox, kind="insert", tab="A", base_version=str(version), position=str(version), text=str(version))
    travel = labs.time_travel_domain(sandbox, version=3)
    assert travel.state.text == "012" == travel.read_models["text"].text
    assert (travel.snapshot_version, travel.events_replayed) == (2, 1)


# --- rebuild ----------------------------------------------------------------------------------------------------


def test_a_rebuild_folds_the_log_again_and_replaces_a_damaged_read_model():
    sandbox = lab("orderbook")
    place_orders(sandbox, 6)
    drain([sandbox.pk])
    good = labs.domain_lab_view(sandbox, "orderbook").read_models["last_price"]
    assert labs.rebuild_domain_read_models(sandbox).message.endswith("the same as before.")
    DomainReadModel.objects.filter(sandbox_id=sandbox.pk, name="last_price").update(
        state={"version": good.version, "price": 1, "trades": 0, "volume": 0}
    )
    outcome = labs.rebuild_domain_read_models(sandbox)
    assert outcome.ok and "differed" in outcome.message and outcome.version == good.version
    assert labs.domain_lab_view(sandbox, "orderbook").read_models["last_price"] == good


def test_a_rebuild_keeps_the_lag_the_events_in_flight_stay_in_flight():
    sandbox = lab("ledger")
    open_ledger(sandbox)
    drain([sandbox.pk])
    labs.set_domain_lag(sandbox, 10_000)
    send(sandbox, kind="open", account="carol")
    assert labs.rebuild_domain_read_models(sandbox).version == 3
    assert labs.domain_lab_view(sandbox, "ledger").read_version == 3


def test_a_cached_read_model_is_used_only_while_its_row_is_unchanged():
    from django.db import transaction

    from lab import domain_state_cache
    from lab.domain_projections import live_names, stored_states, write_states

    sandbox = lab("ledger")
    open_ledger(sandbox)
    drain([sandbox.pk])
    spec = DOMAINS["ledger"]
    models = {name: spec.read_models[name] for name in live_names(spec)}
    good = stored_states(sandbox.pk, models)
    # Another worker's write moves the row's stamp: this process decodes the row again instead of its cached copy.
    other = {**good, "balances": dataclasses.replace(good["balances"], amounts={"external": Decimal(0)})}
    DomainReadModel.objects.filter(sandbox_id=sandbox.pk, name="balances").update(
        state={"version": 3, "amounts": {"external": "0.00"}}, updated_at=timezone.now()
    )
    assert stored_states(sandbox.pk, models)["balances"] == other["balances"]
    # A batch that rolls back leaves its state in the cache, but the row keeps its stamp: the cache is not used.
    with pytest.raises(RuntimeError), transaction.atomic():
        write_states(sandbox.pk, models, good)
        raise RuntimeError("rolled back")
    assert stored_states(sandbox.pk, models)["balances"] == other["balances"]
    domain_state_cache.clear()
    assert stored_states(sandbox.pk, models, fresh=True)["journal"] == good["journal"]


# --- a poison event -------------------------------------------------------------------------------------------


def test_an_unreadable_event_stalls_the_read_models_with_a_dead_letter_and_refuses_commands():
    sandbox = lab("ledger")
    open_ledger(sandbox)
    store.event_store.append(
        sandbox.stream_id, [NewEvent("Transferred", 1, {"bogus": True})], 3, Metadata.for_command("poison")
    )
    drain([sandbox.pk])
    view = labs.domain_lab_view(sandbox, "ledger")
    assert view.read_version == 3 and view.projector_state == "stalled"
    assert "Transferred" in view.stalled and view.state is None
    assert DeadLetter.objects.filter(sandbox_id=sandbox.pk, projection="domain-live").count() == 1
    outcome = send(sandbox, kind="open", account="carol")
    assert not outcome.ok and outcome.rule == "unreadable" and len(events_of(sandbox)) == 4
    assert view.events[0].summary.startswith("unreadable:")


def test_time_travel_and_a_restart_over_an_unreadable_event_say_so_instead_of_raising():
    sandbox = lab("orderbook")
    place_orders(sandbox, 3)
    head = store.head_version(sandbox)
    store.event_store.append(
        sandbox.stream_id, [NewEvent("OrderRested", 1, {"price": "ten"})], head, Metadata.for_command("p")
    )
    report = labs.restart_exchange(sandbox)
    assert report.error and "OrderRested" in report.error and not report.book_equal and report.version == head + 1
    travel = labs.time_travel_domain(sandbox)
    assert travel.error and travel.state is None and travel.read_models == {}
    before = labs.time_travel_domain(sandbox, version=head)  # before the poison event, the past is still readable
    assert before.error is None and before.state.version == head


# --- sandboxes: per session and domain, within the caps, apart from the account lab -----------------------------


def test_a_domain_sandbox_is_one_per_session_and_domain_and_not_created_by_looking():
    assert labs.find_domain_sandbox("session-9", "ledger") is None
    blank = labs.domain_lab_view(None, "ledger")
    assert blank.sandbox_id is None and blank.write_version == 0 and set(blank.read_models) == {"balances", "journal"}
    assert not Sandbox.objects.exists()
    made = labs.domain_sandbox_for_command("session-9", "ledger", ADDRESS)
    assert labs.domain_sandbox_for_command("session-9", "ledger", ADDRESS) == made
    assert labs.find_domain_sandbox("session-9", "ledger") == made
    assert labs.find_domain_sandbox("session-9", "orderbook") is None
    assert made.domain == "ledger" and made.stream_id == f"ledger-{made.pk}"


@override_settings(LAB_MAX_SANDBOXES_PER_ADDRESS=2)
def test_domain_sandboxes_count_toward_the_per_address_cap():
    labs.domain_sandbox_for_command("s1", "ledger", ADDRESS)
    labs.domain_sandbox_for_command("s1", "orderbook", ADDRESS)
    with pytest.raises(SandboxLimitReached):
        labs.domain_sandbox_for_command("s1", "document", ADDRESS)
    labs.domain_sandbox_for_command("s1", "ledger", ADDRESS)  # an existing one is not counted again
    labs.domain_sandbox_for_command("s2", "document", "198.51.100.1")  # another network has room
    assert Sandbox.objects.count() == 3


@override_settings(LAB_MAX_SANDBOXES=1)
def test_domain_sandboxes_count_toward_the_total_cap():
    Sandbox.objects.create(session_key="someone-else")
    with pytest.raises(SandboxLimitReached):
        labs.domain_sandbox_for_command("s1", "ledger", ADDRESS)
    assert Sandbox.objects.count() == 1


def test_the_account_lab_never_takes_a_domain_sandbox_for_its_own():
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session.save()
    domain_sandbox = labs.domain_sandbox_for_command(session.session_key, "ledger", ADDRESS)
    assert sandboxes.sandbox_for_session_key(session.session_key) is None
    account = Sandbox.objects.create(session_key=session.session_key)
    assert account.domain == ACCOUNT and account.stream_id == f"account-{account.pk}"
    assert sandboxes.sandbox_for_session_key(session.session_key) == account
    assert domain_sandbox.pk != account.pk


def test_a_purge_removes_a_domain_sandbox_with_its_events_and_read_models():
    sandbox = lab("ledger")
    open_ledger(sandbox)
    drain([sandbox.pk])
    assert store.purge_sandbox(sandbox.pk)
    assert not StoredEvent.objects.filter(sandbox_id=sandbox.pk).exists()
    assert not DomainReadModel.objects.filter(sandbox_id=sandbox.pk).exists()


# --- pushes ------------------------------------------------------------------------------------------------------


def test_open_pages_are_told_after_a_domain_command_committed(django_capture_on_commit_callbacks, monkeypatch):
    from lab import live

    told = []
    monkeypatch.setattr(live, "publish", lambda sandbox_id, reason, **fields: told.append((sandbox_id, reason, fields)))
    sandbox = lab("document")
    with django_capture_on_commit_callbacks(execute=True):
        send(sandbox, kind="insert", tab="A", base_version="0", position="0", text="x")
    assert (sandbox.pk, "command") == told[-1][:2] and told[-1][2]["write_version"] == 1
    assert connection.vendor in ("sqlite", "postgresql")


def test_the_rebuild_command_rebuilds_a_domain_sandbox_with_its_own_fold_beside_an_account_one():
    from io import StringIO

    from django.core.management import call_command

    from lab import commands

    account = Sandbox.objects.create(session_key="account-session", lag_ms=0)
    commands.send_command(account, "deposit", "5")
    sandbox = lab("ledger")
    open_ledger(sandbox)
    drain()
    DomainReadModel.objects.filter(sandbox_id=sandbox.pk, name="balances").update(
        state={"version": 3, "amounts": {"external": "0.00"}}
    )
    out = StringIO()
    call_command("rebuild_projection", stdout=out)
    assert f"sandbox {sandbox.pk}: rebuilt 3 events (ledger)" in out.getvalue()
    assert f"sandbox {account.pk}: rebuilt 1 events" in out.getvalue()
    assert labs.domain_lab_view(sandbox, "ledger").read_models["balances"] == folded(sandbox, "balances")
    assert not DeadLetter.objects.exists()
