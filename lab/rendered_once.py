"""HTML kept per process under a key that holds everything it shows, so a kept copy can never be stale.

The panel re-renders its lists on every push and page view though most of their rows never change (an event, a
snapshot). Rendering each row once and keeping it, keyed by the values the row shows, saves that work without any
invalidation: a row whose content changed has another key. At most `limit` rows are kept, the least recently
shown going first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from django.utils.safestring import SafeString


class RenderedOnce:
    """A bounded, thread-safe store of rendered rows (pushes and requests render on several threads)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._rows: OrderedDict[Hashable, SafeString] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, render: Callable[[], SafeString]) -> SafeString:
        """The row kept under `key`, or `render()` kept from now on. Two threads may both render a new key: the
        rows are equal, so the later one simply replaces the earlier."""
        with self._lock:
            if (html := self._rows.get(key)) is not None:
                self._rows.move_to_end(key)
                return html
        html = render()
        with self._lock:
            self._rows[key] = html
            while len(self._rows) > self.limit:
                self._rows.popitem(last=False)
        return html

    def __len__(self) -> int:
        return len(self._rows)

    def keys(self) -> list[Hashable]:
        """The kept rows' keys, least recently shown first."""
        with self._lock:
            return list(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
