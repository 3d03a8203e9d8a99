"""A command an async view waited for on the event loop sends its hints from there (lab.live.Hint's `on_loop`):
no hop to a request thread and back for them. Any other on_commit hook still runs on a thread, and a failing hint
is logged, never the learner's error."""

from __future__ import annotations

import threading

import pytest
from channels.layers import get_channel_layer

from lab import commands, live
from lab.store import group_commit
from tests.integration.lab_events import new_sandbox

# SQLite's group commit (a file database): the path where the hooks come back to an async caller. On PostgreSQL
# `arun` runs the whole transaction, hooks included, on a request thread, as before.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]


@pytest.fixture(autouse=True)
def _group_commit_applies() -> None:
    assert group_commit.applies(), "these tests need the file SQLite database the SQLite pass runs on"


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions a command and the group commit hand to a thread (the spy sees every such hop)."""
    seen: list[str] = []
    real = group_commit.sync_to_async

    def spy(func, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(getattr(func, "__name__", repr(func)))
        return real(func, *args, **kwargs)

    monkeypatch.setattr(group_commit, "sync_to_async", spy)
    monkeypatch.setattr(commands, "sync_to_async", spy)
    return seen


async def test_a_commands_push_and_wake_up_go_out_from_the_event_loop(hops):
    from asgiref.sync import sync_to_async

    sandbox = await sync_to_async(new_sandbox)()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(live.group_name(sandbox.pk), channel)
    outcome = await commands.asend_command(sandbox, "deposit", "5")
    assert outcome.accepted
    pushed = await layer.receive(channel)
    assert (pushed["type"], pushed["reason"], pushed["write_version"]) == (live.MESSAGE_TYPE, "command", 1)
    assert hops == ["begin_command"], hops  # one trip to a thread: the command handed to the writer there


async def test_a_hook_that_cannot_run_on_the_loop_takes_them_all_to_a_thread(hops):
    ran: list[tuple[str, bool]] = []
    loop_thread = threading.current_thread()

    def work() -> None:
        from django.db import transaction

        transaction.on_commit(live.Hint(lambda: None, _recorder(ran, "hint")), robust=True)
        transaction.on_commit(lambda: ran.append(("plain", threading.current_thread() is loop_thread)))

    await group_commit.arun(work)
    assert "_run_hooks" in hops
    assert ran == [("plain", False)]  # both ran on the thread: the hint's sync side, which records nothing, too


async def test_a_failing_robust_hint_is_logged_and_the_next_one_still_runs(hops, caplog):
    ran: list[tuple[str, bool]] = []

    async def fails() -> None:
        raise RuntimeError("the layer is gone")

    def work() -> None:
        from django.db import transaction

        transaction.on_commit(live.Hint(lambda: None, fails), robust=True)
        transaction.on_commit(live.Hint(lambda: None, _recorder(ran, "second")), robust=True)

    await group_commit.arun(work)
    assert ran == [("second", True)]
    assert "the layer is gone" in caplog.text
    assert "_run_hooks" not in hops


def _recorder(ran: list[tuple[str, bool]], name: str):  # type: ignore[no-untyped-def]
    async def record() -> None:
        ran.append((name, True))

    return record
