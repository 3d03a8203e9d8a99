"""The lab's WebSocket: origin check, the sandbox from the session only, server-to-client only, pushes after commit.

Through reqflow.asgi.application (origin validator -> session -> routing), with a real session cookie.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client

from lab import consumers
from lab.live import apublish
from lab.models import Sandbox
from reqflow.asgi import application
from tests.integration.lab_events import visitor

# The session middleware runs in asgiref's shared thread, whose connection outlives the test.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.backend,
    pytest.mark.usefixtures("close_thread_connections"),
]

ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")
HX = {"HTTP_HX_REQUEST": "true"}


def in_thread(func):
    """Run test-side sync work in a worker thread and close that thread's connection afterwards: the test client
    keeps it open, which PostgreSQL would count as a session still using the test database."""

    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(run)


def _visit() -> tuple[Client, str]:
    client = visitor()
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value


async def learner() -> tuple[Client, str]:
    return await in_thread(_visit)()


async def post(client: Client, path: str, data: dict[str, str]) -> None:
    await in_thread(client.post)(path, data, **HX)


def socket(session_key: str | None, origin: tuple[bytes, bytes] = ORIGIN, path: str = "/ws/lab/"):
    headers = [origin, HOST]  # a browser always sends Host; the origin check compares the Origin with it
    if session_key:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def connected(session_key: str) -> WebsocketCommunicator:
    """A socket for the session, past the full state every (re)connecting page is sent first."""
    communicator = socket(session_key)
    await communicator.connect()
    await communicator.receive_from(timeout=5)
    return communicator


def version(html: str, testid: str) -> int | None:
    match = re.search(rf'data-testid="{testid}">(\d+)<', html)
    return int(match.group(1)) if match else None


async def the_rest(communicator: WebsocketCommunicator, quiet: float = 0.3) -> list[str]:
    """The frames that follow until the socket is quiet: the rest of a push, whose frames go one after another
    (lab.consumers.frames: the versions, the rest of the live parts, the log)."""
    frames = []
    while not await communicator.receive_nothing(timeout=quiet):
        frames.append(await communicator.receive_from())
    return frames


async def until(communicator: WebsocketCommunicator, predicate, timeout: float = 5.0) -> str:
    """Receive pushes until one satisfies the predicate (pushes coalesce, so any single one may be skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await communicator.receive_from(timeout=max(0.05, deadline - loop.time()))
        if predicate(message):
            return message


@pytest.fixture
def every_part_every_push(monkeypatch):
    """For tests of which parts a hint's push renders: their hints are made up and change nothing, and a push
    leaves out the parts its socket already sent unchanged (until RESEND_AFTER_S), so re-send every part."""
    monkeypatch.setattr(consumers, "RESEND_AFTER_S", 0.0)


async def _sandbox_of(session_key: str) -> Sandbox:
    return await in_thread(
        lambda: Sandbox.objects.filter(session_key=session_key, retired_at__isnull=True).latest("created_at")
    )()


async def test_a_foreign_origin_is_refused():
    _, key = await learner()
    communicator = socket(key, origin=(b"origin", b"https://evil.example"))
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_missing_origin_is_refused():
    _, key = await learner()
    communicator = WebsocketCommunicator(application, "/ws/lab/", headers=[(b"cookie", f"sessionid={key}".encode())])
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_socket_without_a_session_is_refused():
    connected, _ = await socket(None).connect()
    assert not connected


async def test_on_connect_it_sends_the_sessions_own_lab_state():
    client, key = await learner()
    await post(client, "/lab/command/", {"kind": "deposit", "amount": "5"})
    communicator = socket(key)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_from(timeout=5)
    assert version(first, "write-version") == 1
    assert 'hx-swap-oob="true"' in first
    await communicator.disconnect()


async def test_a_client_cannot_pick_another_sandbox():
    alice, alice_key = await learner()
    _, bob_key = await learner()
    await post(alice, "/lab/command/", {"kind": "deposit", "amount": "5"})
    alice_sandbox = await _sandbox_of(alice_key)
    # Bob names Alice's sandbox in the URL: ignored, he still sees his own (empty) sandbox.
    communicator = socket(bob_key, path=f"/ws/lab/?sandbox={alice_sandbox.pk}")
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_from(timeout=5)
    assert version(first, "write-version") == 0
    # ...and asking over the socket closes it: it is server-to-client only.
    await communicator.send_to(text_data=f'{{"sandbox": "{alice_sandbox.pk}"}}')
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_CLIENT_FRAME}


async def test_a_binary_frame_closes_the_socket():
    _, key = await learner()
    communicator = await connected(key)
    await communicator.send_to(bytes_data=b"\x00" * 1024)
    assert (await communicator.receive_output(timeout=5))["code"] == consumers.CLOSE_CLIENT_FRAME


async def test_a_command_is_pushed_to_another_tab_after_it_commits():
    client, key = await learner()
    other_tab = await connected(key)
    await post(client, "/lab/command/", {"kind": "deposit", "amount": "7"})
    pushed = await until(other_tab, lambda m: version(m, "write-version") == 1)
    assert "$7.00" in pushed
    await other_tab.disconnect()


@pytest.mark.redis
@pytest.mark.slow
async def test_an_idle_socket_on_redis_still_receives_the_next_push():
    # channels_redis receives with a 5 s blocking pop; while redis-py's own read timeout was also 5 s, an idle
    # page's socket died with the read's TimeoutError (close 1011) before anything happened to push.
    client, key = await learner()
    idle_tab = await connected(key)
    await asyncio.sleep(6.5)
    await post(client, "/lab/command/", {"kind": "deposit", "amount": "7"})
    pushed = await until(idle_tab, lambda m: version(m, "write-version") == 1)
    assert "$7.00" in pushed
    await idle_tab.disconnect()


@pytest.mark.usefixtures("every_part_every_push")
async def test_projector_progress_pushes_only_the_read_side_and_a_command_pushes_everything_log_last():
    client, key = await learner()
    communicator = await connected(key)
    sandbox = await _sandbox_of(key)
    await apublish(sandbox.pk, "projected", read_version=0)
    read_only = await communicator.receive_from(timeout=5)
    assert 'id="lab-read-model"' in read_only and 'id="lab-versions"' in read_only
    assert 'id="lab-event-log"' not in read_only and 'id="lab-write-model"' not in read_only
    await post(client, "/lab/command/", {"kind": "deposit", "amount": "2"})
    first = await until(communicator, lambda m: version(m, "write-version") == 1)
    assert 'id="lab-write-model"' in first and 'id="lab-expected-version"' in first
    assert 'id="lab-event-log"' not in first  # the heavy part follows in a frame of its own, the last
    *between, then = await the_rest(communicator)
    assert 'id="lab-event-log"' in then and 'id="lab-snapshots"' in then and 'data-version="1"' in then
    assert between and not any('id="lab-event-log"' in frame for frame in between)
    await communicator.disconnect()


@pytest.mark.usefixtures("every_part_every_push")
async def test_at_lag_zero_a_commands_push_waits_for_its_projection_and_shows_both_models_at_once():
    _, key = await learner()
    communicator = await connected(key)
    sandbox = await _sandbox_of(key)
    await apublish(sandbox.pk, "command", write_version=1, projects_at_once=True)
    assert await communicator.receive_nothing(timeout=0.02)  # held for the projection due any moment
    await apublish(sandbox.pk, "projected", read_version=1)
    pushed = await communicator.receive_from(timeout=5)
    # One push for both hints, both models in its first frame (lab.consumers.VERSION_PARTS).
    assert 'id="lab-write-model"' in pushed and 'id="lab-read-model"' in pushed
    rest = await the_rest(communicator)  # (its other frames, the log last; then nothing)
    assert 'id="lab-event-log"' in rest[-1] and not any("write-version" in frame for frame in rest)
    await communicator.disconnect()


@pytest.mark.usefixtures("every_part_every_push")
async def test_a_projection_hint_that_overtook_the_commands_hint_is_not_waited_for(monkeypatch):
    monkeypatch.setattr(consumers, "PROJECTION_WAIT_S", 10.0)  # a held push would show as a 10 s wait
    _, key = await learner()
    communicator = await connected(key)
    sandbox = await _sandbox_of(key)
    await apublish(sandbox.pk, "projected", read_version=1)
    await apublish(sandbox.pk, "command", write_version=1, projects_at_once=True)
    frames = [await communicator.receive_from(timeout=5)]
    while not await communicator.receive_nothing(timeout=0.3):
        frames.append(await communicator.receive_from())
    assert any('id="lab-write-model"' in f for f in frames)  # the command's push, not held 10 s
    await communicator.disconnect()


@pytest.mark.usefixtures("every_part_every_push")
async def test_a_projection_that_does_not_come_delays_a_commands_push_only_briefly():
    _, key = await learner()
    communicator = await connected(key)
    sandbox = await _sandbox_of(key)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await apublish(sandbox.pk, "command", write_version=1, projects_at_once=True)
    pushed = await communicator.receive_from(timeout=5)
    assert 'id="lab-write-model"' in pushed
    assert loop.time() - sent < 2.0  # bounded by PROJECTION_WAIT_S (0.05 s) plus render time, not stuck
    await communicator.disconnect()


async def test_a_burst_of_hints_is_coalesced_into_few_pushes_with_the_latest_state():
    client, key = await learner()
    communicator = await connected(key)
    sandbox = await _sandbox_of(key)
    await post(client, "/lab/command/", {"kind": "deposit", "amount": "3"})
    loop = asyncio.get_running_loop()
    started = loop.time()  # pushes may go out while the hints are still being published (slowly, over Redis)
    for _ in range(100):
        await apublish(sandbox.pk, "projected")
    received, times = [], []
    # receive_nothing peeks without a timeout error, which would cancel the consumer.
    while not await communicator.receive_nothing(timeout=0.5):
        received.append(await communicator.receive_from())
        times.append(loop.time())
    # One push per lab-versions part: a command's push sends its log in a second frame.
    pushes = [m for m in received if 'id="lab-versions"' in m]
    # The burst allowance plus the rate over the time since the first hint (with slack for render times that
    # differ between the first and the last push): never one push per hint.
    span = times[-1] - started
    assert 1 <= len(pushes) <= 3 + 20 * (span + 0.25) + 1, (len(pushes), span)
    # Projector hints re-render only the read side, so the newest push with a write side is the one to check.
    assert [v for m in received if (v := version(m, "write-version")) is not None][-1] == 1
    await communicator.disconnect()


async def test_a_steady_stream_of_hints_is_capped_near_twenty_pushes_a_second():
    _, key = await learner()
    communicator = await connected(key)
    sandbox = await _sandbox_of(key)
    received = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.0
    while loop.time() < end:
        await apublish(sandbox.pk, "projected")
        await asyncio.sleep(0.002)
        while not await communicator.receive_nothing(timeout=0.001):
            await communicator.receive_from()
            received += 1
    while not await communicator.receive_nothing(timeout=0.3):
        await communicator.receive_from()
        received += 1
    # 20 a second plus the burst allowance; hundreds of hints went in.
    assert 5 <= received <= 30, received
    await communicator.disconnect()


async def test_a_reset_in_another_tab_moves_the_socket_to_the_new_sandbox():
    client, key = await learner()
    await post(client, "/lab/command/", {"kind": "deposit", "amount": "9"})
    communicator = socket(key)
    await communicator.connect()
    first = await communicator.receive_from(timeout=5)
    assert version(first, "write-version") == 1
    await post(client, "/lab/reset/", {})
    moved = await until(communicator, lambda m: version(m, "write-version") == 0)
    # Every part that shows the sandbox, not the whole panel: the tab that pressed Reset keeps its answer and Undo.
    assert 'id="lab-event-log"' in moved and 'id="lab-replay"' in moved and 'id="lab-command-id"' in moved
    assert 'id="lab"' not in moved
    await post(client, "/lab/command/", {"kind": "deposit", "amount": "4"})
    await until(communicator, lambda m: version(m, "write-version") == 1 and "$4.00" in m)
    await communicator.disconnect()


async def test_a_push_after_the_session_ended_closes_the_socket():
    client, key = await learner()
    communicator = await connected(key)
    sandbox = await _sandbox_of(key)
    await in_thread(lambda: client.session.delete())()
    await apublish(sandbox.pk, "projected")
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


def parts(html: str) -> set[str]:
    return set(re.findall(r'<\w+[^>]* id="(lab-[\w-]+)"[^>]*hx-swap-oob', html))


async def test_a_push_carries_only_the_parts_that_changed_and_a_later_socket_gets_them_all():
    client, key = await learner()
    first = await connected(key)
    sandbox = await _sandbox_of(key)
    await apublish(sandbox.pk, "projected", read_version=0)  # nothing changed: only the versions (and the clock)
    assert parts(await first.receive_from(timeout=5)) == {"lab-versions"}
    await post(client, "/lab/command/", {"kind": "deposit", "amount": "5"})
    pushed = [await until(first, lambda m: version(m, "write-version") == 1), *await the_rest(first)]
    sent = set().union(*map(parts, pushed))
    assert {"lab-write-model", "lab-expected-version", "lab-summary"} <= sent
    assert "lab-rebuild" not in sent and "lab-retro" not in sent  # unchanged: left out
    assert "lab-event-log" in parts(pushed[-1])  # the log changed too (its own frame, the last)
    later = socket(key)
    await later.connect()
    assert parts(await later.receive_from(timeout=5)) == set(consumers.LIVE_PARTS)  # a new page gets everything
    await first.disconnect()
    await later.disconnect()


async def test_a_controls_hint_sends_every_part_again():
    # Its htmx answer swapped live parts on the page, which the socket cannot know: it forgets what it sent.
    _, key = await learner()
    communicator = await connected(key)
    sandbox = await _sandbox_of(key)
    await apublish(sandbox.pk, "settings")
    received = [await communicator.receive_from(timeout=5), *await the_rest(communicator)]
    assert set().union(*map(parts, received)) == set(consumers.LIVE_PARTS)
    await communicator.disconnect()


async def test_the_sockets_of_a_sandbox_share_one_read_and_render_per_hint(monkeypatch, settings):
    settings.LAB_MAX_SOCKETS_PER_SESSION = 20  # one session's 20 tabs (lab.sockets caps them at 10 by default)
    reads = []

    def counted(sandbox):
        reads.append(sandbox.pk)
        return read_panel(sandbox)

    read_panel = consumers.read_panel
    _, key = await learner()
    tabs = [await connected(key) for _ in range(20)]
    # Each tab past the rest of the state it was sent on connecting, and each push taken from all tabs at once:
    # taken one tab after another, the last tab was read seconds after the first, and under a loaded machine a
    # later push (the projector's) could land inside that window for some tabs only.
    await asyncio.gather(*map(the_rest, tabs))
    sandbox = await _sandbox_of(key)
    monkeypatch.setattr(consumers, "read_panel", counted)
    await apublish(sandbox.pk, "projected", read_version=0)

    async def push(tab: WebsocketCommunicator) -> str:
        return "".join([await tab.receive_from(timeout=5), *await the_rest(tab)])

    pushes = await asyncio.gather(*map(push, tabs))
    assert len(set(pushes)) == 1  # the very same HTML for every tab (all the frames of its push)
    # One read for the 20 sockets (a socket whose hint arrived after the read began would make its own: the
    # in-memory layer delivers a hint to every socket before any push starts).
    assert len(reads) == 1, reads
    for tab in tabs:
        await tab.disconnect()


async def test_two_tabs_moved_by_a_reset_get_command_ids_of_their_own():
    client, key = await learner()
    tabs = [await connected(key) for _ in range(2)]
    await post(client, "/lab/reset/", {})
    moved = [await until(tab, lambda m: 'id="lab-command-id"' in m) for tab in tabs]
    ids = [re.search(r'id="lab-command-id" name="command_id" value="(\w+)"', m).group(1) for m in moved]
    assert ids[0] != ids[1]
    for tab in tabs:
        await tab.disconnect()
