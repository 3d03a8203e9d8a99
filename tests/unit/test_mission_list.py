"""The missions bar's "All missions" list is rendered once per content and kept (lab/templatetags/mission_list.py):
a kept list must never stand in for missions that show differently, and the kept lists stay bounded."""

from __future__ import annotations

import dataclasses
import re

import pytest

from lab.missions import MISSIONS
from lab.templatetags import mission_list as module
from lab.templatetags.mission_list import mission_list
from lab.types import MissionProgress, MissionView


def progress(done: int = 2, *, current: int | None = None, title_of_first: str | None = None) -> MissionProgress:
    views = tuple(
        MissionView(m.id, n, m.title, m.goal, m.hint, n <= done, m.tools) for n, m in enumerate(MISSIONS, start=1)
    )
    if title_of_first is not None:
        views = (dataclasses.replace(views[0], title=title_of_first), *views[1:])
    now = next((v for v in views if not v.done), None) if current is None else views[current - 1]
    return MissionProgress(views, now, 0, frozenset())


@pytest.fixture(autouse=True)
def _empty() -> None:
    module._lists.clear()


def test_the_list_shows_every_mission_whether_done_and_the_current_one() -> None:
    html = mission_list(progress(done=2))
    items = re.findall(r'<li data-testid="mission" data-mission="([^"]+)" data-done="(true|false)"([^>]*)>', html)
    assert [m for m, _, _ in items] == [m.id for m in MISSIONS]
    assert [d for _, d, _ in items] == ["true", "true"] + ["false"] * (len(MISSIONS) - 2)
    assert [extra for _, _, extra in items].count(' aria-current="step"') == 1 and "aria-current" in items[2][2]
    assert html.count("(done)") == 2 and html.startswith('<ol class="lab-missions__list">')


def test_a_list_is_rendered_once_and_then_kept() -> None:
    first = mission_list(progress(done=2))
    assert mission_list(progress(done=2)) is first
    assert len(module._lists) == 1


def test_everything_the_list_shows_is_in_its_key() -> None:
    base = mission_list(progress(done=2))
    assert mission_list(progress(done=3)) != base
    assert mission_list(progress(done=2, current=5)) != base
    assert "A &lt;b&gt;new&lt;/b&gt; title" in mission_list(progress(done=2, title_of_first="A <b>new</b> title"))
    everything = mission_list(progress(done=len(MISSIONS)))
    assert "aria-current" not in everything and everything.count("(done)") == len(MISSIONS)


def test_the_kept_lists_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module._lists, "limit", 3)
    for done in range(len(MISSIONS)):
        mission_list(progress(done=done))
    assert len(module._lists) == 3
