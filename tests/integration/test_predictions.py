"""Predict, then reveal: each question appears only in its situation, and the reveal is the real read."""

from __future__ import annotations

import pytest

from lab import commands, projector
from lab.models import Sandbox
from tests.integration.lab_events import visitor
from tests.integration.test_lab_views import CONCEPT, HX, deposit, text_of

pytestmark = [pytest.mark.django_db, pytest.mark.backend]


@pytest.fixture
def learner():
    return visitor(CONCEPT)


def project_all() -> None:
    """What the projector would do (this test process runs none): apply every due event."""
    projector.drain(Sandbox.objects.values_list("pk", flat=True))


def set_lag(client, seconds: str) -> None:
    assert client.post("/lab/lag/", {"lag": seconds}, **HX).status_code == 200


def test_a_query_during_the_lag_is_predicted_then_revealed_by_the_real_query(learner):
    set_lag(learner, "0")
    deposit(learner, "70")
    project_all()
    page = learner.get(CONCEPT).content.decode()
    assert 'data-moment="stale-query"' not in page  # caught up or not yet projected: asked only while behind
    set_lag(learner, "10")
    deposit(learner, "35")
    page = learner.get(CONCEPT).content.decode()
    assert 'data-moment="stale-query"' in page
    question = text_of(page, "prediction")
    assert "write model is at v=2" in question and "$105.00" in question
    right = learner.get("/lab/predict/", {"moment": "stale-query", "choice": "$70.00"}, **HX)
    answer = text_of(right.content.decode(), "prediction-answer")
    assert right.status_code == 200 and "Right" in answer and "It returned $70.00" in answer
    assert "v=1 while the write model was at v=2" in answer
    wrong = learner.get("/lab/predict/", {"moment": "stale-query", "choice": "$105.00"}, **HX)
    assert "Not quite" in text_of(wrong.content.decode(), "prediction-answer")


def test_the_rebuild_and_the_old_event_questions_appear_in_their_tools(learner):
    page = learner.get(CONCEPT).content.decode()
    assert 'data-moment="rebuild"' not in page and 'data-moment="old-event"' not in page  # an empty account
    set_lag(learner, "0")
    deposit(learner, "50")
    project_all()
    page = learner.get(CONCEPT).content.decode()
    assert 'data-moment="rebuild"' in page and 'data-moment="old-event"' not in page  # v2 not shipped
    assert learner.post("/lab/schema/", {"version": "2"}, **HX).status_code == 200
    page = learner.get(CONCEPT).content.decode()
    assert 'data-moment="old-event"' in page
    html = learner.get("/lab/predict/", {"moment": "old-event", "choice": "upcast"}, **HX).content.decode()
    answer = text_of(html, "prediction-answer")
    assert "Right" in answer and "amount_cents" in answer and "5000" in answer
    html = learner.get("/lab/predict/", {"moment": "rebuild", "choice": "empty"}, **HX).content.decode()
    assert "Not quite" in text_of(html, "prediction-answer") and "$50.00" in text_of(html, "prediction-answer")


@pytest.mark.parametrize(
    "params", [{"moment": "nope", "choice": "x"}, {"moment": "rebuild"}, {"moment": "rebuild", "choice": "x" * 81}]
)
def test_a_bad_prediction_request_is_a_clear_400(learner, params):
    response = learner.get("/lab/predict/", params, **HX)
    assert response.status_code == 400
    assert (
        response.content.decode() in ("Unknown question.", "Pick one of the answers.")
        or "80" in response.content.decode()
    )


def test_without_javascript_a_prediction_opens_the_lab_page_with_its_answer(learner):
    deposit(learner, "50")
    response = learner.get("/lab/predict/", {"moment": "rebuild", "choice": "old"})
    assert response.status_code == 200 and "<html" in response.content.decode()
    assert "Right" in text_of(response.content.decode(), "prediction-answer")


def test_the_old_event_question_stays_however_many_v2_deposits_followed(learner):
    # It once looked for the v1 deposit in the newest 50 only, so the question vanished after 50 more deposits.
    deposit(learner, "5")
    assert learner.post("/lab/schema/", {"version": "2"}, **HX).status_code == 200
    sandbox = Sandbox.objects.get(retired_at__isnull=True)
    for _ in range(55):
        commands.send_command(sandbox, "deposit", "1")
    page = learner.get(CONCEPT).content.decode()
    assert 'data-moment="old-event"' in page
    html = learner.get("/lab/predict/", {"moment": "old-event", "choice": "upcast"}, **HX).content.decode()
    assert "Event #1 is stored as v1" in text_of(html, "prediction-answer")
