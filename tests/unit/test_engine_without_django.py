"""The engine (lab/engine) is pure Python: it imports and works in a process where Django, Channels, Redis,
psycopg and every other third-party package, and the rest of the lab, cannot be imported at all.

import-linter checks the imports it can see; this runs them, so an import hidden in a function, or one pulled in
through a chain, shows up too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "lab" / "engine"
# Every module under lab/engine, subpackages (lab.engine.domains) and their modules included.
ENGINE_MODULES = sorted(
    ".".join(("lab", "engine", *path.relative_to(ENGINE).with_suffix("").parts)).removesuffix(".__init__")
    for path in ENGINE.rglob("*.py")
    if path.parent != ENGINE or path.name != "__init__.py"
)

# Runs in a fresh `python -I` (no PYTHONPATH, no user site, not even the current directory on sys.path).
SCRIPT = r"""
import importlib, importlib.abc, json, sys

root, modules = sys.argv[1], sys.argv[2:]
sys.path.insert(0, root)
ALLOWED = {"lab", "lab.engine"}
refused = []


class Refuse(importlib.abc.MetaPathFinder):
    # Only the standard library, the `lab` package itself and lab.engine.* may be imported.
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if name in ALLOWED or name.startswith("lab.engine.") or (top != "lab" and top in sys.stdlib_module_names):
            return None
        refused.append([name, importer()])
        raise ImportError(f"{name} is not available to the engine")


def importer():
    # The module whose code asked: the first frame above this finder outside the import machinery.
    frame = sys._getframe(2)
    while frame.f_code.co_filename.startswith("<frozen importlib"):
        frame = frame.f_back
    return frame.f_globals.get("__name__")


sys.meta_path.insert(0, Refuse())
for name in ("django", "channels", "asgiref", "daphne", "redis", "psycopg", "lab.models"):
    sys.modules.pop(name, None)
    try:
        importlib.import_module(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"the finder let {name} through")
probes, refused[:] = [name for name, _ in refused], []
before = set(sys.modules)
for name in modules:
    importlib.import_module(name)

from decimal import Decimal

from lab.engine import decider, projection, replay, snapshots, upcasting
from lab.engine.messages import Deposit, Deposited, Withdraw, Withdrew
from lab.engine.store import ConcurrencyError, InMemoryEventStore, Metadata, NewEvent

state = decider.initial_state()
events = decider.decide(state, Deposit(Decimal("50")))
state = decider.fold(events, state)
overdraft = decider.decide(state, Withdraw(Decimal("50.01")))
history = events + [Withdrew(Decimal("20.00"))]
stored = [upcasting.encode(event) for event in history]
decoded = [upcasting.decode(*row) for row in stored]
balance, lines = projection.fold_balance([(i, i, event) for i, event in enumerate(decoded, 1)])
loaded = replay.load(None, None, decoded)
snapshot = snapshots.state_to_dict(loaded.state)

store = InMemoryEventStore()
appended = store.append("account-1", [NewEvent(*row) for row in stored], 0, Metadata.for_command("cmd-1"))
try:
    store.append("account-1", [NewEvent(*stored[0])], 0, Metadata.for_command("cmd-2"))
    conflict = None
except ConcurrencyError as exc:
    conflict = type(exc).__name__

from lab.engine.domains import DOMAINS
from lab.engine.domains.document import Insert
from lab.engine.domains.ledger import OpenAccount
from lab.engine.domains.orderbook import PlaceOrder

first = {
    "ledger": OpenAccount("alice"),
    "orderbook": PlaceOrder("o1", "buy", 100, 2),
    "document": Insert("a", 0, 0, "hi"),
}
domains = {}
for name, command in first.items():
    domain = DOMAINS[name]
    decided = domain.decide(domain.initial_state(), command)
    rows = [domain.encode(event) for event in decided]
    restored = domain.restore(domain.state_to_dict(domain.initial_state()), decided)
    domains[name] = [rows, [domain.decode(*row) for row in rows] == decided, restored.events_replayed]

print(json.dumps({
    "probes_refused": probes,
    "refused_while_importing": refused,
    "loaded": sorted(set(sys.modules) - before),
    "deposit": [repr(e) for e in events],
    "state": [str(state.balance), state.version],
    "overdraft": overdraft.rule,
    "stored": stored,
    "decoded_equal": decoded == history,
    "projected": [str(balance.amount), balance.version, [str(line.balance_after) for line in lines]],
    "replayed": [str(loaded.state.balance), loaded.events_replayed],
    "snapshot": snapshot,
    "snapshot_reads_back": snapshots.state_from_dict(snapshot) == loaded.state,
    "fingerprint_length": len(snapshots.fingerprint()),
    "store": [[e.position, e.version, e.event_type] for e in appended],
    "store_version": store.stream_version("account-1"),
    "conflict": conflict,
    "domains": domains,
}))
"""


def run_engine_without_django() -> dict:
    result = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT, str(ROOT), *ENGINE_MODULES],
        cwd=ROOT / "tests",  # not the repository root, so nothing is found by accident
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


def test_the_engine_has_the_modules_this_test_names():
    expected = ["decider", "messages", "projection", "replay", "snapshots", "store", "upcasting"]
    assert set(ENGINE_MODULES) >= {f"lab.engine.{name}" for name in expected}
    domains = ["codec", "spec", "ledger", "ledger_views", "orderbook", "orderbook_views", "document", "document_views"]
    assert set(ENGINE_MODULES) >= {"lab.engine.domains", *(f"lab.engine.domains.{name}" for name in domains)}


def test_every_engine_module_imports_with_django_and_every_third_party_package_unavailable():
    report = run_engine_without_django()
    # The finder really refuses: each probe raised ImportError.
    assert report["probes_refused"] == ["django", "channels", "asgiref", "daphne", "redis", "psycopg", "lab.models"]
    # Not even an import the engine would have caught and done without. (The standard library may try some:
    # `copy` looks for Jython's org.python.core.)
    by_the_lab = [[name, by] for name, by in report["refused_while_importing"] if by.startswith("lab")]
    assert by_the_lab == []
    lab_or_third_party = [
        name
        for name in report["loaded"]
        if name.partition(".")[0] not in sys.stdlib_module_names
        and name not in {"lab", "lab.engine"}
        and not name.startswith("lab.engine.")
    ]
    assert lab_or_third_party == []
    assert set(ENGINE_MODULES) <= set(report["loaded"]) | {"lab.engine"}


def test_without_django_the_engine_decides_folds_encodes_decodes_and_stores():
    report = run_engine_without_django()
    assert report["deposit"] == ["Deposited(amount=Decimal('50.00'), currency='USD')"]
    assert report["state"] == ["50.00", 1]
    assert report["overdraft"] == "no-overdraft"
    assert report["stored"] == [
        ["Deposited", 2, {"amount_cents": 5000, "currency": "USD"}],
        ["Withdrew", 1, {"amount": "20.00"}],
    ]
    assert report["decoded_equal"] is True
    assert report["projected"] == ["30.00", 2, ["50.00", "30.00"]]
    assert report["replayed"] == ["30.00", 2]
    assert report["snapshot"] == {"balance": "30.00", "version": 2, "deposits": 1, "withdrawals": 1}
    assert report["snapshot_reads_back"] is True
    assert report["fingerprint_length"] == 64
    assert report["store"] == [[1, 1, "Deposited"], [2, 2, "Withdrew"]]
    assert report["store_version"] == 2
    assert report["conflict"] == "ConcurrencyError"


def test_without_django_each_domain_decides_encodes_decodes_and_restores():
    report = run_engine_without_django()
    assert report["domains"] == {
        "ledger": [[["AccountOpened", 1, {"account": "alice"}]], True, 1],
        "orderbook": [
            [
                ["OrderPlaced", 1, {"order_id": "o1", "side": "buy", "price": 100, "quantity": 2}],
                ["OrderRested", 1, {"order_id": "o1", "side": "buy", "price": 100, "quantity": 2}],
            ],
            True,
            2,
        ],
        "document": [[["Inserted", 1, {"tab": "a", "base_version": 0, "position": 0, "text": "hi"}]], True, 1],
    }
