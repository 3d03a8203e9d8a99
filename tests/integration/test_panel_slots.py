"""lab/templatetags/panel_slots.py: the panel's result slots, answer slots and prediction forms, kept rendered once
per content, read exactly as their includes do, whatever was kept before."""

from __future__ import annotations

import itertools

import pytest
from django.template import engines
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from lab import predictions
from lab.predictions import Prediction, Reveal
from lab.templatetags import panel_slots

SLOTS = ("lab-projector-result", "lab-snapshot-result", "lab-reset-result")
MOMENTS = predictions.MOMENTS


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
    yield
    panel_slots._kept.clear()


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
