"""The in-memory channel layer (the embedded default's CHANNEL_LAYERS), sweeping out expired entries at most once a
second instead of on every call.

Channels' InMemoryChannelLayer walks every channel's queue and every group membership, looking for expired entries,
on each group_send and each receive. A lab page's socket receives again after every message, and every command sends
a hint or two, so the work grew with the number of open pages times the rate of messages: with 300 lab pages open
under `make load`, py-spy found the server's one event loop at 80% of a core, most of it in that sweep, and the
request threads waiting on the loop to deliver their hints (lab.live.publish), so commands queued for seconds.
Messages expire after `expiry` (60 s) and group memberships after a day; sweeping once a second changes when an
expired entry goes by at most SWEEP_EVERY_S.
"""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer

SWEEP_EVERY_S = 1.0


class SweepingInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._swept_at = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < SWEEP_EVERY_S:
            return
        self._swept_at = now
        super()._clean_expired()
