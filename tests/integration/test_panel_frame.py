"""The panel's frame is rendered once per key and kept (lab.panel_frame, reqflow/same_for_everyone.py): a panel
must read exactly as it would with the frame rendered afresh, whatever panel kept the frame before it.

Each panel below differs from the others in something the frame shows (the page it is on, a rejected amount, a
control's answer, time travel, replay, a query's wait, an undo offer, a shared link, the mode, the missions met,
the log filter, the lag, a push's `oob`). Every panel is rendered after every other one has left its frame kept,
and compared with the template with the tag taken out. A value the frame reads but its key misses fails here.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.http import QueryDict
from django.template import engines

import reqflow.same_for_everyone as same_for_everyone
from lab import facts, share
from lab.models import STATE_ONLY, Sandbox
from lab.panel import PANEL, Panel, build_panel, render_panel
from lab.sandboxes import sandbox_for_session_key
from lab.types import Progress
from tests.integration.lab_events import new_sandbox, visitor

pytestmark = [pytest.mark.django_db(transaction=True)]

FRAME_TAG = re.compile(r"\{% same_for_everyone [^%]*%\}")


def _plain_template():
    """panel.html with its frame rendered every time: the kept-frame tags taken out, the rest as it is."""
    source = Path(settings.BASE_DIR, "templates", PANEL).read_text()
    assert len(FRAME_TAG.findall(source)) == 1, "the panel's frame is no longer kept"
    plain = FRAME_TAG.sub("", source)
    for tag in ("{% end_same_for_everyone %}", "{% per_visitor %}", "{% end_per_visitor %}"):
        plain = plain.replace(tag, "")
    return engines["django"].from_string(plain)


def _visited_sandbox(deposits: int, lag: str = "2"):
    client = visitor()
    client.post("/lab/lag/", {"lag": lag, "next": "/lab/"}, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    for _ in range(deposits):
        response = client.post("/lab/command/", {"kind": "deposit", "amount": "12.5"}, HTTP_HX_REQUEST="true",
                               HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)  # fmt: skip
        assert response.status_code == 200, response.content[:300]
    return sandbox_for_session_key(client.session.session_key)


def _panels() -> list[tuple[str, Panel, bool]]:
    busy = _visited_sandbox(4)  # lag 2 s: events in flight, the read side behind
    slow = _visited_sandbox(2, lag="7.5")
    busier = _visited_sandbox(7)
    every_3, replay_50 = _visited_sandbox(4), _visited_sandbox(4)
    Sandbox.objects.filter(pk=every_3.pk).update(snapshot_interval=3)
    Sandbox.objects.filter(pk=replay_50.pk).update(replay_rate=50)
    every_3.refresh_from_db()
    replay_50.refresh_from_db()
    focused = new_sandbox()
    facts.note(focused.pk, facts.MISSION_FOCUS, value=6)  # a shared link's mission: more tools shown
    state_only = new_sandbox(mode=STATE_ONLY)
    concept = "/concepts/cqrs-event-sourcing/"
    return [
        ("busy", build_panel(None, busy, next_url="/lab/"), False),
        ("busy, pushed", build_panel(None, busy, next_url="/lab/"), True),
        ("busy, concept page", build_panel(None, busy, next_url=concept), False),
        ("busier", build_panel(None, busier, next_url="/lab/"), False),
        ("read side at $99", _read_balance(build_panel(None, busier, next_url="/lab/"), "99.00"), False),
        ("blank", build_panel(None, new_sandbox(), next_url="/lab/"), False),
        ("lag 7.5 s", build_panel(None, slow, next_url="/lab/"), False),
        (
            "rejected amount",
            build_panel(
                None, busy, next_url="/lab/", amount="12<b>", errors={"amount": "Enter an amount <like 12.50>"}
            ),
            False,
        ),
        (
            "snapshot answered",
            build_panel(
                None,
                busy,
                next_url="/lab/",
                controls_slot="lab-snapshot-result",
                controls_message={"ok": True, "text": "Taken"},
            ),
            False,
        ),
        ("time travel", build_panel(None, busy, next_url="/lab/", params=QueryDict("tt=2&at=10:11:12")), False),
        ("replay", build_panel(None, busy, next_url="/lab/", params=QueryDict("replay=3")), False),
        ("filtered log", build_panel(None, busy, next_url="/lab/", params=QueryDict("log_type=Deposited")), False),
        ("waited query", build_panel(None, busy, next_url="/lab/", query_waited_for=4), False),
        # An offer already past: its countdown reads "0 s left" however long the test takes.
        ("undo offered", build_panel(None, busy, next_url="/lab/", undo_due_ms=1), False),
        ("shared link", _shared(build_panel(None, busy, next_url="/lab/")), False),
        ("snapshots every 3", build_panel(None, every_3, next_url="/lab/"), False),
        ("replay at 50/s", build_panel(None, replay_50, next_url="/lab/"), False),
        ("rebuilding", _running(build_panel(None, busy, next_url="/lab/"), "rebuild"), False),
        ("retro catching up", _running(build_panel(None, busy, next_url="/lab/"), "retro"), False),
        ("mission focus", build_panel(None, focused, next_url="/lab/"), False),
        ("state-only", build_panel(None, state_only, next_url="/lab/"), False),
    ]


def _read_balance(panel: Panel, balance: str) -> Panel:
    """The panel with the read model at another balance (the rebuild prediction quotes it)."""
    panel.state = dataclasses.replace(panel.state, read=dataclasses.replace(panel.state.read, balance=Decimal(balance)))
    return panel


def _running(panel: Panel, job: str) -> Panel:
    """The panel while a rebuild, or the retroactive model's catch-up, runs (halfway through its 4 events)."""
    progress = Progress(done=2, total=4, running=True)
    state = panel.state
    if job == "rebuild":
        panel.state = dataclasses.replace(state, rebuild=progress)
    else:
        panel.state = dataclasses.replace(state, retro=dataclasses.replace(state.retro, progress=progress))
    return panel


def _shared(panel: Panel) -> Panel:
    panel.shared = share.landing(QueryDict("lag=4500&tt=abc"))  # one good value, one dropped with its message
    assert panel.shared is not None
    return panel


def test_every_panel_reads_the_same_whatever_frame_was_kept_before_it():
    plain = _plain_template()
    panels = _panels()
    expected = {name: plain.render({"lab": panel, "oob": oob}) for name, panel, oob in panels}
    assert len(set(expected.values())) == len(panels), "two of the panels read the same: the test lost a case"
    keys = set()
    for before_name, before, before_oob in panels:
        for name, panel, oob in panels:
            same_for_everyone._kept.clear()
            render_panel(PANEL, {"lab": before, "oob": before_oob})  # its frame is kept now
            keys.update(same_for_everyone._kept)
            rendered = render_panel(PANEL, {"lab": panel, "oob": oob})
            assert rendered == expected[name], f"{name!r} after {before_name!r} read differently"
    assert len(keys) >= 10, "the frame's key hardly varies: these panels no longer test it"


def test_two_learners_in_the_same_situation_share_one_frame_and_each_sees_their_own_numbers():
    first, second = _visited_sandbox(1), _visited_sandbox(3)
    same_for_everyone._kept.clear()
    one = render_panel(PANEL, {"lab": build_panel(None, first, next_url="/lab/"), "oob": False})
    two = render_panel(PANEL, {"lab": build_panel(None, second, next_url="/lab/"), "oob": False})
    assert len(same_for_everyone._kept) == 1, "the second learner's frame was rendered again"
    assert 'data-testid="write-version">1<' in one and 'data-testid="write-version">3<' in two
    assert "$12.50" in one and "$37.50" in two
