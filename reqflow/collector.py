"""The garbage collector's pace in a server process (daphne, `run_projector`).

CPython runs its youngest generation every 700 net allocations of container objects, and a full collection
whenever enough objects have survived into the oldest one. A server allocates fast: under `make load` (300
learners, 50 commands/s against `make run`) a full collection ran every ~5 s and held the GIL for 100-145 ms, and
every command and push in flight waited for it: p99 command 101-150 ms against a p50 of 7 ms, most of the tail.

Collected every GC_GEN0_THRESHOLD allocations instead, what a request or a push allocates is mostly gone by the
time a collection looks (reference counting freed it), so far fewer objects survive into the older generations:
in the same 60 s no full collection ran at all, and p99 command fell to 17 ms, p99 read-model-visible to 21 ms
(one run each, same sitting). A young collection then takes 5-10 ms, well inside the goals.

What the process loaded to start (Django, the apps, the URLconf) is live for good: frozen after start-up, a full
collection, when one comes, no longer walks it.
"""

from __future__ import annotations

import gc

from django.conf import settings


def pace_for_a_server() -> None:
    """Call once, after start-up. GC_GEN0_THRESHOLD=0 keeps Python's own pace."""
    threshold = settings.GC_GEN0_THRESHOLD
    if threshold <= 0:
        return
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
    gc.collect()  # what start-up left behind, so that only the live is frozen
    gc.freeze()
