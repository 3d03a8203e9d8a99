"""Private means private: bob, signed in, tries every notes endpoint against alice's note and learns nothing."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import RequestFactory
from django.urls import reverse

from notes.models import Note
from notes.views import notes_context

pytestmark = pytest.mark.django_db

SLUG = "cqrs-event-sourcing"
SECRET = "alice-secret-zebra"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alices_note(alice):
    return Note.objects.create(owner=alice, concept_slug=SLUG, body=f"My {SECRET} answer")


def _without_csrf(html: bytes) -> bytes:
    return re.sub(rb"[A-Za-z0-9]{64}", b"TOKEN", html)


def assert_untouched(note: Note) -> None:
    fresh = Note.objects.get(pk=note.pk)
    assert fresh.body == note.body
    assert fresh.owner_id == note.owner_id


def test_reading_another_learners_note_is_a_404_like_a_note_that_does_not_exist(bob_client, alices_note):
    theirs = bob_client.get(reverse("notes:detail", args=[alices_note.pk]))
    nobodys = bob_client.get(reverse("notes:detail", args=[uuid.uuid4()]))
    assert theirs.status_code == nobodys.status_code == 404
    assert SECRET not in theirs.content.decode()
    # Same page either way (bar the per-response CSRF mask), so the answer does not confirm that the id exists.
    assert _without_csrf(theirs.content) == _without_csrf(nobodys.content)


def test_the_owner_can_read_it(alice_client, alices_note):
    response = alice_client.get(reverse("notes:detail", args=[alices_note.pk]))
    assert response.status_code == 200
    assert SECRET in response.content.decode()


def test_deleting_another_learners_note_is_a_404_and_it_survives(bob_client, alices_note):
    assert bob_client.get(reverse("notes:delete", args=[alices_note.pk])).status_code == 404
    assert bob_client.post(reverse("notes:delete", args=[alices_note.pk])).status_code == 404
    assert_untouched(alices_note)


def test_saving_on_the_same_concept_writes_bobs_own_note_and_never_alices(bob_client, bob, alices_note):
    response = bob_client.post(reverse("notes:edit", args=[SLUG]), {"body": "bob's view"}, **HTMX)
    assert response.status_code == 200
    assert SECRET not in response.content.decode()
    assert Note.objects.get(owner=bob, concept_slug=SLUG).body == "bob's view"
    assert_untouched(alices_note)


def test_a_save_naming_alices_note_id_still_only_touches_bobs_note(bob_client, bob, alices_note):
    # Extra fields are ignored: the note is found from the signed-in learner, never from the request.
    bob_client.post(
        reverse("notes:edit", args=[SLUG]),
        {"body": "overwrite?", "id": str(alices_note.pk), "owner": str(alices_note.owner_id)},
        **HTMX,
    )
    assert_untouched(alices_note)
    assert Note.objects.get(owner=bob).body == "overwrite?"


def test_the_note_page_and_its_preview_show_bob_only_his_own(bob_client, alices_note):
    page = bob_client.get(reverse("notes:edit", args=[SLUG]))
    assert page.status_code == 200
    assert SECRET not in page.content.decode()


def test_the_concept_page_box_context_holds_only_the_viewers_note(rf: RequestFactory, bob, alices_note):
    request = rf.get(f"/concepts/{SLUG}/")
    request.user = bob
    context = notes_context(request, SLUG)
    assert context["notes_body"] == ""
    assert SECRET not in context["notes_preview"]


def test_my_notes_never_lists_another_learners_notes(bob_client, alices_note):
    html = bob_client.get(reverse("notes:mine")).content.decode()
    assert SECRET not in html
    assert str(alices_note.pk) not in html


def test_search_never_finds_another_learners_notes(bob_client, bob, alices_note):
    Note.objects.create(owner=bob, concept_slug="idempotency-keys", body="bob only")
    html = bob_client.get(reverse("notes:mine"), {"q": SECRET}).content.decode()
    assert alices_note.body not in html
    assert "0 of 1 note match" in html


def test_export_never_includes_another_learners_notes(bob_client, bob, alices_note):
    Note.objects.create(owner=bob, concept_slug="idempotency-keys", body="bob only")
    text = bob_client.get(reverse("notes:export")).content.decode()
    assert "bob only" in text
    assert SECRET not in text


@pytest.mark.parametrize(
    "name,kwargs",
    [("notes:mine", {}), ("notes:export", {}), ("notes:edit", {"slug": SLUG})],
)
def test_signed_out_visitors_are_sent_to_sign_in_by_every_listing(client, alices_note, name, kwargs):
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_signed_out_visitors_cannot_read_a_note_by_id(client, alices_note):
    response = client.get(reverse("notes:detail", args=[alices_note.pk]))
    assert response.status_code == 302
    assert SECRET not in response.content.decode()


@pytest.fixture
def csrf_alice(alice, client_for):
    return client_for(alice, enforce_csrf_checks=True)


def test_a_save_without_a_csrf_token_is_refused(csrf_alice, alice):
    response = csrf_alice.post(reverse("notes:edit", args=[SLUG]), {"body": "forged"}, **HTMX)
    assert response.status_code == 403
    assert not Note.objects.filter(owner=alice).exists()


def test_a_cross_site_beacon_without_a_token_is_refused(csrf_alice, alice):
    response = csrf_alice.post(reverse("notes:edit", args=[SLUG]), {"body": "forged", "beacon": "1"})
    assert response.status_code == 403
    assert not Note.objects.filter(owner=alice).exists()


def test_a_delete_without_a_csrf_token_is_refused(csrf_alice, alice):
    note = Note.objects.create(owner=alice, concept_slug=SLUG, body="keep me")
    assert csrf_alice.post(reverse("notes:delete", args=[note.pk])).status_code == 403
    assert Note.objects.filter(pk=note.pk).exists()


def test_an_htmx_save_with_the_header_token_and_a_beacon_with_the_form_token_both_work(csrf_alice, alice):
    page = csrf_alice.get(reverse("notes:edit", args=[SLUG]))
    token = str(page.context["csrf_token"])
    url = reverse("notes:edit", args=[SLUG])
    assert csrf_alice.post(url, {"body": "via header"}, HTTP_X_CSRFTOKEN=token, **HTMX).status_code == 200
    assert Note.objects.get(owner=alice).body == "via header"
    response = csrf_alice.post(url, {"body": "via beacon", "beacon": "1", "csrfmiddlewaretoken": token})
    assert response.status_code == 204
    assert Note.objects.get(owner=alice).body == "via beacon"
