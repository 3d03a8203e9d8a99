"""The projector's view of a database it cannot reach: capped exponential backoff, and one log line per outage.

While PostgreSQL restarts (or SQLite stays locked), every try fails the same way. Retrying at once is a tight loop
that floods the log and the server coming back; a traceback per try buries the one line that matters. So the loop
asks `Outage.delay()` before it touches the database, and reports each failure to `failed()`: the first failure of
a burst logs one line, a long outage one reminder a minute, the first success one line saying how many tries it
took and how long it lasted. The delays double from BASE_S up to CAP_S: a 30 s outage costs about ten tries, and
the projector is back within CAP_S of the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import InterfaceError, OperationalError

log = logging.getLogger(__name__)

BASE_S = 0.2
CAP_S = 5.0
REMIND_EVERY_S = 60.0


def is_unavailable(exc: BaseException | None) -> bool:
    """True for a database that cannot serve right now (a lost connection, a refused connect, a lock past its
    timeout), looking through the causes; False for anything else, which is a bug and keeps its traceback."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (OperationalError, InterfaceError)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class Outage:
    """The state of one projector's current outage (none, most of the time). Used from the projector's loop only."""

    def __init__(
        self, name: str, *, base_s: float = BASE_S, cap_s: float = CAP_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.base_s = base_s
        self.cap_s = cap_s
        self.clock = clock
        self.tries = 0  # failed tries in the current outage
        self.outages = 0  # outages seen since the start
        self._started = 0.0
        self._retry_at = 0.0
        self._reminded = 0.0

    def delay(self) -> float:
        """Seconds to wait before the next try (0: go ahead)."""
        return max(0.0, self._retry_at - self.clock()) if self.tries else 0.0

    def failed(self, exc: BaseException, where: str) -> float:
        """Count a failed try; returns the wait before the next one."""
        now = self.clock()
        self.tries += 1
        wait = min(self.cap_s, self.base_s * 2 ** (self.tries - 1))
        self._retry_at = now + wait
        if self.tries == 1:
            self.outages += 1
            self._started = self._reminded = now
            log.warning(
                "projector %s: database unavailable (%s, in %s); retrying with backoff up to %.0f s",
                self.name, first_line(exc), where, self.cap_s,
            )  # fmt: skip
        elif now - self._reminded >= REMIND_EVERY_S:
            self._reminded = now
            log.warning(
                "projector %s: database still unavailable after %d tries in %.0f s (%s)",
                self.name, self.tries, now - self._started, first_line(exc),
            )  # fmt: skip
        return wait

    def recovered(self) -> None:
        """A database call succeeded: end the outage, if there was one."""
        if not self.tries:
            return
        log.warning(
            "projector %s: database reachable again after %d failed tries in %.1f s",
            self.name, self.tries, self.clock() - self._started,
        )  # fmt: skip
        self.tries = 0
        self._retry_at = 0.0
