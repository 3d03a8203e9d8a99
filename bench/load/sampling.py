"""The site's CPU use while the learners run: sampled once a second in a thread, so a step's share of the two cores
(1.0 = one core busy the whole step) can be read off between the wall-clock times the driver reports for it.
A figure a rate is compared with: a site at 1.0 in its one daphne process is bound by that process (the GIL)."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable


class CpuSampler:
    def __init__(self, read: Callable[[], float], every_s: float = 1.0) -> None:
        self.read = read
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []  # (time.time(), CPU seconds so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.read()))
            self._stop.wait(self.every_s)

    def share(self, began: float, ended: float) -> float | None:
        """CPU seconds per wall second between two times (the nearest samples inside them); None if too short."""
        times = [t for t, _ in self.samples]
        i, j = bisect.bisect_left(times, began), bisect.bisect_right(times, ended) - 1
        if j <= i:
            return None
        (t0, c0), (t1, c1) = self.samples[i], self.samples[j]
        return round((c1 - c0) / (t1 - t0), 2)
