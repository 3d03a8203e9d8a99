"""The panel's small repeated pieces, kept rendered once per content (lab.rendered_once):

- `{% control_result "lab-rebuild-result" %}`: a control's result slot (lab/_control_result.html). Six on every
  page, all but the one that just answered empty;
- `{% reveal_slot "rebuild" %}`: where a prediction's answer lands (lab/_reveal.html), three on every page, empty
  until the learner picks a choice;
- `{{ prediction|prediction_form }}`: a "Predict" question with its choices (lab/_prediction.html), a frozen
  record of plain text built by lab.predictions, so the record itself is the key;
- `{{ line|history_row }}`: a line of the read side's history (lab/_history_row.html), up to ten on every page
  and read-side push, keyed by what it shows (kind, amount, balance after, version), which never changes.

As `{% include %}`s these twelve cost about 1.2 ms of a 14.6 ms page view (one process, each timed in place):
each include looks its template up, pushes a context and resolves its lookups afresh, to print the same few
empty elements again. Kept, an empty slot is keyed by its name and whether it goes out of band, which is all it
shows; a slot with a message or an answer in it is rendered as before, every time (it shows once, then the
next view is empty again). tests/integration/test_panel_slots.py compares each with its include.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.template.loader import render_to_string
from django.urls import get_script_prefix
from django.utils.safestring import SafeString

from lab.predictions import Prediction
from lab.rendered_once import RenderedOnce
from lab.types import HistoryLineView

RESULT_TEMPLATE = "lab/_control_result.html"
REVEAL_TEMPLATE = "lab/_reveal.html"
PREDICTION_TEMPLATE = "lab/_prediction.html"
HISTORY_TEMPLATE = "lab/_history_row.html"
KEPT = 256  # empty slots: about twenty (each slot and moment, in or out of band); predictions: one per situation
HISTORY_KEPT = 2048  # ten lines per sandbox shown, each about 200 bytes
NOTHING = {"controls_slot": "", "controls_message": None, "reveal": None}  # a panel with nothing in any slot

register = template.Library()
_kept = RenderedOnce(KEPT)
_history = RenderedOnce(HISTORY_KEPT)


@register.simple_tag(takes_context=True)
def control_result(context: template.Context, slot: str) -> SafeString:
    lab, oob = context.get("lab"), context.get("oob")
    if getattr(lab, "controls_slot", "") == slot and getattr(lab, "controls_message", None):
        return _render(RESULT_TEMPLATE, {"lab": lab, "oob": oob, "slot": slot})
    return _kept.get(
        (RESULT_TEMPLATE, slot, bool(oob)), lambda: _render(RESULT_TEMPLATE, {"lab": NOTHING, "oob": oob, "slot": slot})
    )


@register.simple_tag(takes_context=True)
def reveal_slot(context: template.Context, moment: str) -> SafeString:
    lab, oob = context.get("lab"), context.get("oob")
    reveal = getattr(lab, "reveal", None)
    if reveal and reveal.moment == moment:
        return _render(REVEAL_TEMPLATE, {"lab": lab, "oob": oob, "moment": moment})
    return _kept.get(
        (REVEAL_TEMPLATE, moment, bool(oob)),
        lambda: _render(REVEAL_TEMPLATE, {"lab": NOTHING, "oob": oob, "moment": moment}),
    )


@register.filter
def prediction_form(prediction: Prediction | None) -> SafeString:
    key = (PREDICTION_TEMPLATE, get_script_prefix(), prediction)  # its form's URLs are under the script prefix
    return _kept.get(key, lambda: _render(PREDICTION_TEMPLATE, {"pr": prediction}))


@register.filter
def history_row(line: HistoryLineView) -> SafeString:
    key = (line.kind, line.amount, line.balance_after, line.version)
    return _history.get(key, lambda: _render(HISTORY_TEMPLATE, {"line": line}))


def _render(name: str, context: dict[str, Any]) -> SafeString:
    return render_to_string(name, context)
