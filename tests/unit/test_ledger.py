"""The payment ledger: given events -> when a command -> then events or a rejection; plus its properties."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.engine.domains import LEDGER
from lab.engine.domains.ledger import (
    EXTERNAL,
    RULE_ID,
    RULE_NAME,
    RULE_NOT_A_TRANSFER,
    RULE_OVERDRAFT,
    RULE_REFUNDED,
    RULE_SAME,
    AccountOpened,
    Deposit,
    Entry,
    OpenAccount,
    Refund,
    Refunded,
    Transfer,
    Transferred,
    decide,
)
from lab.engine.domains.ledger_views import READ_MODELS
from lab.engine.messages import Rejected

D = Decimal
OPENED = [AccountOpened("alice"), AccountOpened("bob")]
FUNDED = [*OPENED, Transferred("d1", (Entry(EXTERNAL, D("-100.00")), Entry("alice", D("100.00"))))]


def given_(*events):
    return LEDGER.fold(events)


def rule(result):
    assert isinstance(result, Rejected), result
    return result.rule


def test_a_transfer_posts_one_balanced_debit_and_credit():
    assert decide(given_(*FUNDED), Transfer("t1", "alice", "bob", D("30"))) == [
        Transferred("t1", (Entry("alice", D("-30.00")), Entry("bob", D("30.00"))))
    ]


def test_a_transfer_that_would_overdraw_is_rejected_whole():
    assert rule(decide(given_(*FUNDED), Transfer("t1", "alice", "bob", D("100.01")))) == RULE_OVERDRAFT


def test_a_refund_posts_the_reverse_entries_and_leaves_the_transfer_as_it_was():
    transfer = Transferred("t1", (Entry("alice", D("-30.00")), Entry("bob", D("30.00"))))
    assert decide(given_(*FUNDED, transfer), Refund("r1", "t1")) == [
        Refunded("r1", "t1", (Entry("alice", D("30.00")), Entry("bob", D("-30.00"))))
    ]


def test_a_transfer_is_refunded_once_and_a_refund_cannot_overdraw_the_payee():
    transfer = Transferred("t1", (Entry("alice", D("-30.00")), Entry("bob", D("30.00"))))
    refund = Refunded("r1", "t1", (Entry("alice", D("30.00")), Entry("bob", D("-30.00"))))
    assert rule(decide(given_(*FUNDED, transfer, refund), Refund("r2", "t1"))) == RULE_REFUNDED
    assert rule(decide(given_(*FUNDED), Refund("r2", "nope"))) == RULE_NOT_A_TRANSFER
    spent = Transferred("t2", (Entry("bob", D("-30.00")), Entry(EXTERNAL, D("30.00"))))
    assert rule(decide(given_(*FUNDED, transfer, spent), Refund("r2", "t1"))) == RULE_OVERDRAFT


def test_names_ids_and_accounts_are_checked():
    assert rule(decide(given_(), OpenAccount("Alice"))) == RULE_NAME
    assert rule(decide(given_(), OpenAccount(EXTERNAL))) == RULE_NAME
    assert rule(decide(given_(*FUNDED), Transfer("d1", "alice", "bob", D("1")))) == RULE_ID
    assert rule(decide(given_(*FUNDED), Transfer("t1", "alice", "alice", D("1")))) == RULE_SAME


ACCOUNTS = ["alice", "bob", "carol"]
IDS = [f"p{i}" for i in range(8)]
amounts = st.integers(min_value=1, max_value=15_000).map(lambda cents: D(cents) / 100)
commands = st.one_of(
    st.builds(OpenAccount, st.sampled_from(ACCOUNTS)),
    st.builds(Deposit, st.sampled_from(IDS), st.sampled_from(ACCOUNTS), amounts),
    st.builds(
        Transfer, st.sampled_from(IDS), st.sampled_from(ACCOUNTS), st.sampled_from([*ACCOUNTS, EXTERNAL]), amounts
    ),
    st.builds(Refund, st.sampled_from(IDS), st.sampled_from(IDS)),
)


def run(sequence):
    """The live ledger after each accepted command: (state, the whole log so far) at every step."""
    state, log, steps = LEDGER.initial_state(), [], []
    for command in sequence:
        result = LEDGER.decide(state, command)
        if isinstance(result, Rejected):
            continue
        for event in result:
            state = LEDGER.evolve(state, event)
            log.append(event)
        steps.append((state, list(log)))
    return state, log, steps


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=40))
def test_the_ledger_sums_to_zero_and_no_customer_account_goes_below_zero(sequence):
    for state, log in run(sequence)[2]:
        balances = READ_MODELS["balances"].fold(log)
        assert sum(state.balances.values()) == 0
        assert balances.amounts == state.balances
        assert all(amount >= 0 for account, amount in state.balances.items() if account != EXTERNAL)
        assert balances.customer_total == -state.balances[EXTERNAL]


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=40))
def test_refunds_never_edit_past_entries(sequence):
    _, log, _ = run(sequence)
    journal = READ_MODELS["journal"]
    before = journal.initial()
    for event in log:
        after = journal.apply_at(before, event, before.version + 1)
        assert after.lines[: len(before.lines)] == before.lines  # only ever appended to
        if isinstance(event, Refunded):
            original = [line for line in before.lines if line.posting_id == event.transfer_id]
            added = after.lines[len(before.lines) :]
            assert [(line.account, -line.amount) for line in added] == [(o.account, o.amount) for o in original]
        before = after


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=40))
def test_the_auditor_added_after_the_fact_reconciles_the_log_to_the_live_balances(sequence):
    state, log, _ = run(sequence)
    audit = READ_MODELS["auditor"].fold(log)
    assert audit.accounts == state.balances
    assert audit.reconciled
    assert audit.postings_checked == sum(not isinstance(event, AccountOpened) for event in log)
    stored = [LEDGER.encode(event) for event in log]
    assert READ_MODELS["auditor"].fold(LEDGER.decode(*row) for row in stored) == audit
