"""The in-memory store on its own (the shared contract suite also runs it; these are its local details)."""

from __future__ import annotations

import threading

import pytest

from lab.engine.store import ConcurrencyError, InMemoryEventStore, Metadata, NewEvent


def new(n=1):
    return [NewEvent("Deposited", 2, {"amount_cents": 100, "currency": "USD"}) for _ in range(n)]


def test_appends_from_many_threads_lose_nothing_and_report_every_conflict():
    store = InMemoryEventStore()
    accepted, conflicts = [], []
    lock = threading.Lock()

    def writer():
        for _ in range(200):
            version = store.stream_version("s")
            try:
                store.append("s", new(), version, Metadata.for_command("c"))
                with lock:
                    accepted.append(version + 1)
            except ConcurrencyError:
                with lock:
                    conflicts.append(version)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(accepted) == list(range(1, len(accepted) + 1))
    assert len(accepted) + len(conflicts) == 8 * 200
    assert [e.position for e in store.read_all_after(0, 10_000)] == list(range(1, len(accepted) + 1))


def test_a_negative_expected_version_is_a_programming_error():
    with pytest.raises(ValueError):
        InMemoryEventStore().append("s", new(), -1, Metadata.for_command("c"))


def test_metadata_for_a_command_is_deterministic_so_retries_are_recognisable():
    assert Metadata.for_command("abc") == Metadata.for_command("abc")
    assert Metadata.for_command("abc").causation_id != Metadata.for_command("abd").causation_id
