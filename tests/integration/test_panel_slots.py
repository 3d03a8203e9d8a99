"""lab/templatetags/panel_slots.py: the panel's result slots, answer slots, prediction forms and history lines, kept
rendered once per content, read exactly as their includes (or the markup in place) do, whatever was kept before."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.template import engines
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from lab import predictions
from lab.predictions import Prediction, Reveal
from lab.templatetags import panel_slots
from lab.types import HistoryLineView

SLOTS = ("lab-projector-result", "lab-snapshot-result", "lab-reset-result")
MOMENTS = predictions.MOMENTS
NOW = dt.datetime(2026, 12, 2, 18, 0, tzinfo=dt.UTC)


class Lab:
    """What the slots read of a panel (a command's answer has none of it: `bare`)."""

    def __init__(self, slot: str = "", message: dict | None = None, reveal: Reveal | None = None) -> None:
        self.controls_slot, self.controls_message, self.reveal = slot, message, reveal


LABS = [
    Lab(),
    Lab("lab-snapshot-result", {"ok": True, "text": "Snapshot taken at v=3 <now>"}),
    Lab("lab-reset-result", {"ok": False, "text": mark_safe("<em>Nothing</em> to undo")}),
    Lab("lab-reset-result", None),
    Lab(reveal=Reveal("rebuild", True, "Queries keep returning $5.00.", "Blue/green <swap>.")),
    Lab(reveal=Reveal("stale-query", False, "It returned $0.00.", "")),
    object(),  # bare
]
PREDICTIONS = [
    None,
    Prediction("rebuild", "While the read model is rebuilt, what will <Query> return?", (("old", "$5.00 & more"),)),
    Prediction("stale-query", "The write model is at v=3, the read model at v=1.", (("$1.00", "$1.00"), ("w", "W"))),
]


def _tags(source: str, context: dict) -> str:
    return engines["django"].from_string("{% load panel_slots %}" + source).render(context)


@pytest.fixture(autouse=True)
def nothing_kept():
    panel_slots._kept.clear()
    panel_slots._history.clear()
    yield
    panel_slots._kept.clear()
    panel_slots._history.clear()


def test_result_and_answer_slots_read_as_their_includes_in_any_order():
    cases = [(lab, oob, name) for lab in LABS for oob in (False, True) for name in SLOTS + MOMENTS]
    for first, then in itertools.product(cases, repeat=2):
        for lab, oob, name in (first, then):  # `first` leaves what it keeps; `then` must not read it
            context = {"lab": lab, "oob": oob}
            if name in SLOTS:
                tag, include = (
                    f'{{% control_result "{name}" %}}',
                    render_to_string(panel_slots.RESULT_TEMPLATE, context | {"slot": name}),
                )
            else:
                tag, include = (
                    f'{{% reveal_slot "{name}" %}}',
                    render_to_string(panel_slots.REVEAL_TEMPLATE, context | {"moment": name}),
                )
            assert _tags(tag, context) == include, (name, vars(lab) if hasattr(lab, "__dict__") else lab, oob)
    assert len(panel_slots._kept) == 2 * len(SLOTS + MOMENTS)  # only empty slots are kept, each in or out of band


def test_a_message_shows_in_its_own_slot_only_and_is_escaped():
    lab = LABS[1]
    shown = _tags('{% control_result "lab-snapshot-result" %}', {"lab": lab, "oob": False})
    assert "Snapshot taken at v=3 &lt;now&gt;" in shown and "lab-result--ok" in shown
    other = _tags('{% control_result "lab-reset-result" %}', {"lab": lab, "oob": False})
    assert other == '<div id="lab-reset-result" class="lab-result" ></div>\n'


def test_prediction_forms_read_as_their_include_in_any_order():
    for first, then in itertools.product(PREDICTIONS, repeat=2):
        for prediction in (first, then):
            include = render_to_string(panel_slots.PREDICTION_TEMPLATE, {"pr": prediction})
            assert _tags("{{ pr|prediction_form }}", {"pr": prediction}) == include
    assert "&lt;Query&gt;" in _tags("{{ pr|prediction_form }}", {"pr": PREDICTIONS[1]})


LINES = [
    HistoryLineView(1, 1, "deposit", Decimal("5"), Decimal("5.00"), NOW),
    HistoryLineView(2, 2, "deposit", Decimal("5.00"), Decimal("10"), NOW),  # equal keys to other lines' values
    HistoryLineView(3, 3, "withdrawal", Decimal("1234.5"), Decimal("-0.001"), NOW),
    HistoryLineView(4, 4, "<interest>", 7, Decimal("1241.5"), NOW),
]
INLINE_LINE = (
    '{% load money %}<li><span class="lab-tag">{{ line.kind }}</span> ${{ line.amount|money }}\n'
    '  <span class="muted">→ ${{ line.balance_after|money }} · from event #{{ line.version }}</span></li>\n'
)


def test_history_lines_read_as_rendered_in_place_in_any_order():
    for first, then in itertools.product(LINES, repeat=2):
        for line in (first, then):
            assert _tags("{{ line|history_row }}", {"line": line}) == _tags(INLINE_LINE, {"line": line})
    assert "&lt;interest&gt;</span> $7.00" in _tags("{{ line|history_row }}", {"line": LINES[3]})
    assert "$1,234.50" in _tags("{{ line|history_row }}", {"line": LINES[2]})
