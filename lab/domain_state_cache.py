"""Decoded read-model states of the domain labs, kept per process, so neither a projector batch nor a page decodes
a big stored state again when it has not changed.

A domain read model is stored as JSON (lab.domain_projections), and decoding it (lab.engine.domains.codec) costs
in proportion to its size: a ledger's journal holds every entry ever posted, so at 2,000 postings each one-event
batch spent about half its time decoding the journal it had itself written a moment before. An entry here is
trusted only while the row still has the version and `updated_at` it was cached with; any other writer (another
worker, a rebuild, a rolled-back batch) changes or never commits them, and the row is decoded afresh.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import OrderedDict
from typing import Any

MAX_ENTRIES = 64  # states of the most recently used sandboxes; a state is at most one sandbox's log in size

_Key = tuple[uuid.UUID, str]
_entries: OrderedDict[_Key, tuple[int, dt.datetime, Any]] = OrderedDict()
_lock = threading.Lock()  # the projector's thread and the request threads share it


def get(sandbox_id: uuid.UUID, name: str, version: int, updated_at: dt.datetime) -> Any | None:
    """The decoded state of that row if it is cached at exactly this version and write time, else None."""
    with _lock:
        found = _entries.get((sandbox_id, name))
        if found is None or found[0] != version or found[1] != updated_at:
            return None
        _entries.move_to_end((sandbox_id, name))
        return found[2]


def put(sandbox_id: uuid.UUID, name: str, version: int, updated_at: dt.datetime, state: Any) -> None:
    with _lock:
        _entries[(sandbox_id, name)] = (version, updated_at, state)
        _entries.move_to_end((sandbox_id, name))
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)


def clear() -> None:
    with _lock:
        _entries.clear()
