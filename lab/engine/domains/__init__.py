"""The architectures the lab's "Where it shows up" names, each a small domain on the same engine as the account.

Each domain is two modules, its write model (`<name>.py`: commands, events, state, decide, evolve) and its read
models (`<name>_views.py`: pure folds), registered here as data. Everything generic (stored-event encoding with
schema versions, snapshots as dicts, restore from a snapshot plus replay, version-checked read-model folds) lives
once in spec.py and codec.py, so the store, the projector and the panel can take any domain from DOMAINS.
"""

from __future__ import annotations

from lab.engine.domains import document, document_views, ledger, ledger_views, orderbook, orderbook_views
from lab.engine.domains.spec import Domain

LEDGER = Domain(
    name="ledger",
    title="Payment ledger",
    command_types=(ledger.OpenAccount, ledger.Deposit, ledger.Transfer, ledger.Refund),
    event_types=(ledger.AccountOpened, ledger.Transferred, ledger.Refunded),
    state_type=ledger.LedgerState,
    initial_state=ledger.initial_state,
    decide=ledger.decide,
    evolve=ledger.evolve,
    read_models=ledger_views.READ_MODELS,
)

ORDERBOOK = Domain(
    name="orderbook",
    title="Order book",
    command_types=(orderbook.PlaceOrder, orderbook.CancelOrder),
    event_types=(orderbook.OrderPlaced, orderbook.TradeExecuted, orderbook.OrderRested, orderbook.OrderCancelled),
    state_type=orderbook.BookState,
    initial_state=orderbook.initial_state,
    decide=orderbook.decide,
    evolve=orderbook.evolve,
    read_models=orderbook_views.READ_MODELS,
)

DOCUMENT = Domain(
    name="document",
    title="Document log",
    command_types=(document.Insert, document.Delete),
    event_types=(document.Inserted, document.Deleted),
    state_type=document.DocumentState,
    initial_state=document.initial_state,
    decide=document.decide,
    evolve=document.evolve,
    read_models=document_views.READ_MODELS,
)

DOMAINS: dict[str, Domain] = {domain.name: domain for domain in (LEDGER, ORDERBOOK, DOCUMENT)}
