"""The document log: edits as operations rebased over concurrent ones; two tabs converge whatever the order of
arrival; the document is a snapshot plus the operations replayed after it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.engine.domains import DOCUMENT
from lab.engine.domains.document import (
    RULE_BASE,
    RULE_GONE,
    RULE_RANGE,
    WINDOW,
    Delete,
    Deleted,
    Insert,
    Inserted,
    decide,
)
from lab.engine.domains.document_views import READ_MODELS
from lab.engine.messages import Rejected

HELLO = [Inserted("seed", 0, 0, "hello world")]


def given_(*events):
    return DOCUMENT.fold(events)


def rule(result):
    assert isinstance(result, Rejected), result
    return result.rule


def test_an_edit_on_the_current_version_applies_as_it_is():
    assert decide(given_(*HELLO), Insert("a", 1, 5, ",")) == [Inserted("a", 1, 5, ",")]


def test_a_later_edit_is_rebased_over_the_earlier_one_on_the_same_version():
    earlier = Deleted("a", 1, 0, 6)  # "world"
    assert decide(given_(*HELLO, earlier), Insert("b", 1, 11, "!")) == [Inserted("b", 1, 5, "!")]


def test_an_insert_inside_text_deleted_concurrently_is_rejected_with_the_reason():
    earlier = Deleted("a", 1, 0, 6)
    assert rule(decide(given_(*HELLO, earlier), Insert("b", 1, 2, "y"))) == RULE_GONE
    assert rule(decide(given_(*HELLO, earlier), Delete("b", 1, 1, 3))) == RULE_GONE


def test_the_base_version_and_the_range_are_checked_against_the_version_the_edit_saw():
    assert rule(decide(given_(*HELLO), Insert("a", 2, 0, "x"))) == RULE_BASE
    assert rule(decide(given_(*HELLO), Delete("a", 1, 8, 4))) == RULE_RANGE
    many = given_(*HELLO, *[Inserted("a", v, 0, "x") for v in range(1, WINDOW + 2)])
    assert rule(decide(many, Insert("b", 1, 0, "y"))) == RULE_BASE


def test_the_document_reports_how_many_operations_it_replayed_after_its_snapshot():
    log = [*HELLO, Inserted("a", 1, 5, ","), Inserted("a", 2, 12, "!")]
    restored = DOCUMENT.restore(DOCUMENT.state_to_dict(given_(*log[:1])), log[1:])
    assert (restored.state.text, restored.snapshot_version, restored.events_replayed) == ("hello, world!", 1, 2)


texts = st.text(alphabet="abcxyz ", min_size=1, max_size=5)


@st.composite
def edit_at(draw, tab, version, length):
    if length and draw(st.booleans()):
        position = draw(st.integers(0, length - 1))
        return Delete(tab, version, position, draw(st.integers(1, length - position)))
    return Insert(tab, version, draw(st.integers(0, length)), draw(texts))


@st.composite
def histories(draw):
    """A log of edits by one tab, each on the version before it."""
    state, log = DOCUMENT.initial_state(), []
    for _ in range(draw(st.integers(0, 12))):
        result = decide(state, draw(edit_at("seed", state.version, len(state.text))))
        assert not isinstance(result, Rejected)
        log += result
        state = DOCUMENT.fold(result, state)
    return log


def arrive(state, *edits):
    for edit in edits:
        result = decide(state, edit)
        if not isinstance(result, Rejected):
            state = DOCUMENT.fold(result, state)
        else:
            assert result.rule == RULE_GONE
    return state


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_two_tabs_editing_the_same_version_converge_whatever_the_order_of_arrival(log, data):
    # Both tabs saw the same version, possibly a few versions behind the head (edits they have not seen yet).
    seen = given_(*log[: len(log) - data.draw(st.integers(0, min(3, len(log))))])
    a = data.draw(edit_at("a", seen.version, len(seen.text)))
    b = data.draw(edit_at("b", seen.version, len(seen.text)))
    head = given_(*log)
    assert arrive(head, a, b).text == arrive(head, b, a).text


@settings(max_examples=150, deadline=None)
@given(histories(), st.data())
def test_the_text_equals_the_snapshot_plus_the_replayed_operations(log, data):
    live = given_(*log)
    cut = data.draw(st.integers(min_value=0, max_value=len(log)))
    snapshot = json.loads(json.dumps(DOCUMENT.state_to_dict(given_(*log[:cut]))))
    tail = [DOCUMENT.decode(*json.loads(json.dumps(DOCUMENT.encode(event)))) for event in log[cut:]]
    restored = DOCUMENT.restore(snapshot, tail)
    assert restored.state == live
    assert (restored.snapshot_version, restored.events_replayed) == (cut, len(log) - cut)
    assert READ_MODELS["text"].fold(log).text == live.text
