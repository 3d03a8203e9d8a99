"""The concept page's article is rendered once and kept (reqflow/same_for_everyone.py): a page served from the kept
article is the page rendered afresh; every visitor's forms carry a CSRF token that works for that visitor only; the
lab and the notes in it are each visitor's own."""

from __future__ import annotations

import re

import pytest
from django.middleware.csrf import _unmask_cipher_token
from django.test import Client
from django.urls import reverse

from reqflow import same_for_everyone

pytestmark = pytest.mark.django_db

PAGE = reverse("concepts:detail", args=["cqrs-event-sourcing"])
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([A-Za-z0-9]+)"')
# What changes from one render of the same visitor's page to the next (a token is masked afresh for each
# response; the lab stamps its parts with the time and a new command id).
CHANGING = [
    (TOKEN, 'name="csrfmiddlewaretoken" value="T"'),
    (re.compile(r'"X-CSRFToken": "[A-Za-z0-9]+"'), '"X-CSRFToken": "T"'),
    (re.compile(r'data-(stamp|server-now|series)="[^"]*"'), "data-changes"),
    (re.compile(r'name="command_id" value="[0-9a-f]+"'), 'name="command_id" value="C"'),
]


def steady(page: str) -> str:
    for pattern, same in CHANGING:
        page = pattern.sub(same, page)
    return page


@pytest.fixture(autouse=True)
def nothing_kept():
    same_for_everyone._kept.clear()
    yield
    same_for_everyone._kept.clear()


def test_a_page_from_the_kept_article_is_the_page_rendered_afresh():
    visitor = Client()
    afresh = visitor.get(PAGE).content.decode()
    assert len(same_for_everyone._kept) == 2  # the article, and the lab panel's frame (lab.panel_frame)
    kept = visitor.get(PAGE).content.decode()
    assert steady(kept) == steady(afresh)
    assert len(TOKEN.findall(kept)) >= 13  # the thirteen "Try it" forms, and the lab's own


def test_each_visitor_gets_tokens_of_their_own_and_a_try_it_form_works_for_them_only():
    ann, bob = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    ann_page, bob_page = ann.get(PAGE).content.decode(), bob.get(PAGE).content.decode()
    bob_token = TOKEN.findall(bob_page)[0]
    assert bob_token not in ann_page
    # Every form of the page (the article's and the lab's, both from parts ann's view kept) carries bob's own secret.
    for client, page in ((ann, ann_page), (bob, bob_page)):
        secrets = {_unmask_cipher_token(token) for token in TOKEN.findall(page)}
        assert secrets == {client.cookies["csrftoken"].value}
    try_it = {"scenario": "stale-reads", "next": PAGE}
    assert ann.post(reverse("lab:scenario"), try_it | {"csrfmiddlewaretoken": bob_token}).status_code == 403
    assert bob.post(reverse("lab:scenario"), try_it | {"csrfmiddlewaretoken": bob_token}).status_code == 303


def test_the_lab_and_the_notes_are_each_visitors_own(django_user_model):
    ann = Client()
    assert ann.post(reverse("lab:command"), {"kind": "deposit", "amount": "42"}).status_code == 303
    ann_page = ann.get(PAGE).content.decode()
    bob = Client()
    bob.force_login(django_user_model.objects.create_user("bob", password="x" * 20))
    bob_page = bob.get(PAGE).content.decode()
    assert steady(ann_page) != steady(bob_page)
    assert ann_page.count('data-testid="event-row"') == 1 and 'data-testid="event-row"' not in bob_page  # ann's log
    assert 'data-testid="note-editor"' in bob_page and 'data-testid="note-editor"' not in ann_page
    assert "Sign up to take notes" in ann_page and "Sign up to take notes" not in bob_page
