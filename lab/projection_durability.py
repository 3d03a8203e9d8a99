"""The projector's SQLite connection commits without waiting for the disk (`PRAGMA synchronous=NORMAL`).

Why: at `synchronous=FULL` every projection step ended in an fsync of the WAL, the same disk wait a command's
COMMIT pays, and it held SQLite's one write lock through that wait: the next learner's command queued behind a
read-model update. Seen here under a steady write load, single fsyncs took 0.1 to 0.5 s now and then. Without
them, 32 clients posting commands (with the projector applying every one) got 1.04 to 1.07 times the commands/s
of the same code at FULL, measured side by side (bench/ab.py).

Why it is safe: in WAL mode NORMAL keeps the database consistent; what a power cut (not a crash: a killed process
loses nothing the OS has) may lose is the last few projection transactions. Each of them moved the read model and
its checkpoint together, so after a restart the projector finds its checkpoint a little earlier and applies the
same events again: still exactly once, nothing skipped. The read model is derived from the log by design; the
log itself (commands, snapshots taken by a learner, every write outside the projector) stays at FULL, so an
acknowledged command still survives a power cut. A later FULL commit by anyone fsyncs the WAL, projector frames
included. OFF is never used: it could corrupt the file on a power cut.

PostgreSQL keeps `synchronous_commit` on for every session, the projector's included: its WAL flush is shared
between sessions (group commit), so the projector's commits do not queue behind each other as SQLite's do.
"""

from __future__ import annotations

from typing import Any


def relax_projection_commits(wrapper: Any) -> None:
    """Once per SQLite connection of this thread's Django `wrapper` (connection): synchronous=NORMAL."""
    if wrapper.vendor != "sqlite":
        return
    wrapper.ensure_connection()
    raw = wrapper.connection
    # The wrapper keeps the connection it relaxed: a reconnect (after a broken connection) gets a new object,
    # which is relaxed in turn. Holding the old one means its identity cannot be reused by the new one.
    if getattr(wrapper, "_reqflow_relaxed", None) is not raw:
        with wrapper.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=NORMAL")
        wrapper._reqflow_relaxed = raw
