"""The notes box: autosave over htmx, the no-JavaScript Save button, the size cap, My notes, search and export."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from notes.models import NOTE_MAX_CHARS, Note
from notes.views import notes_context

pytestmark = pytest.mark.django_db

SLUG = "cqrs-event-sourcing"
HTMX = {"HTTP_HX_REQUEST": "true"}


def save_url(slug: str = SLUG) -> str:
    return reverse("notes:edit", args=[slug])


def test_an_autosave_stores_the_note_and_answers_with_saved_status_and_preview(alice_client, alice):
    response = alice_client.post(save_url(), {"body": "## Idea\n\n**Events** are facts"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Saved at" in html
    assert 'id="note-preview" hx-swap-oob="innerHTML"' in html
    assert "<strong>Events</strong>" in html
    assert Note.objects.get(owner=alice, concept_slug=SLUG).body == "## Idea\n\n**Events** are facts"


def test_saving_again_updates_the_one_note_for_that_concept(alice_client, alice):
    alice_client.post(save_url(), {"body": "first"}, **HTMX)
    alice_client.post(save_url(), {"body": "second"}, **HTMX)
    assert list(Note.objects.filter(owner=alice).values_list("body", flat=True)) == ["second"]


def test_note_ids_are_random_uuids(alice_client, alice):
    alice_client.post(save_url(), {"body": "one"}, **HTMX)
    alice_client.post(save_url("idempotency-keys"), {"body": "two"}, **HTMX)
    ids = [note.pk for note in Note.objects.filter(owner=alice)]
    assert len(ids) == 2
    assert all(pk.version == 4 for pk in ids)


def test_without_javascript_the_save_button_posts_and_comes_back_to_the_page(alice_client, alice):
    response = alice_client.post(save_url(), {"body": "plain form", "next": f"/concepts/{SLUG}/#notes"})
    assert response.status_code == 302
    assert response["Location"] == f"/concepts/{SLUG}/#notes"
    assert Note.objects.get(owner=alice).body == "plain form"


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_a_save_never_redirects_off_site(alice_client, next_url):
    response = alice_client.post(save_url(), {"body": "x", "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == f"{save_url()}#notes"


def test_the_leave_page_beacon_saves_and_gets_an_empty_answer(alice_client, alice):
    response = alice_client.post(save_url(), {"body": "typed just before leaving", "beacon": "1"})
    assert response.status_code == 204
    assert Note.objects.get(owner=alice).body == "typed just before leaving"


def test_a_note_over_the_cap_is_refused_with_a_clear_message_and_nothing_is_lost(alice_client, alice):
    alice_client.post(save_url(), {"body": "kept"}, **HTMX)
    too_long = "x" * (NOTE_MAX_CHARS + 1)
    response = alice_client.post(save_url(), {"body": too_long}, **HTMX)
    assert response.status_code == 422
    assert "20,001 characters long and the limit is 20,000" in response.content.decode()
    assert Note.objects.get(owner=alice).body == "kept"


def test_without_javascript_an_over_long_note_comes_back_in_the_textarea(alice_client):
    too_long = "y" * (NOTE_MAX_CHARS + 5)
    response = alice_client.post(save_url(), {"body": too_long})
    assert response.status_code == 422
    html = response.content.decode()
    assert too_long in html
    assert "the limit is 20,000" in html


def test_line_breaks_count_once_as_the_browser_counts_them(alice_client, alice):
    body = "ab\r\n" * (NOTE_MAX_CHARS // 3)  # 3 characters each in the browser, 4 on the wire
    response = alice_client.post(save_url(), {"body": body}, **HTMX)
    assert response.status_code == 200
    assert Note.objects.get(owner=alice).body == body.replace("\r\n", "\n")


def test_a_full_note_of_multibyte_text_fits_under_the_request_size_cap(alice_client, alice):
    # The form posts multipart, so 20,000 three-byte characters stay under DATA_UPLOAD_MAX_MEMORY_SIZE.
    body = "漢" * NOTE_MAX_CHARS
    response = alice_client.post(save_url(), {"body": body}, **HTMX)  # the test client posts multipart
    assert response.status_code == 200
    assert len(Note.objects.get(owner=alice).body) == NOTE_MAX_CHARS


def test_a_body_over_the_request_size_cap_is_a_400_not_a_500(alice_client):
    response = alice_client.post(save_url(), {"body": "😀" * 40_000}, **HTMX)
    assert response.status_code == 400


def test_a_nul_byte_is_refused_not_a_crash(alice_client, alice):
    response = alice_client.post(save_url(), {"body": "bad\x00byte"}, **HTMX)
    assert response.status_code == 422
    assert not Note.objects.filter(owner=alice).exists()


def test_emptying_a_note_removes_it(alice_client, alice):
    alice_client.post(save_url(), {"body": "soon gone"}, **HTMX)
    response = alice_client.post(save_url(), {"body": "  \n"}, **HTMX)
    assert response.status_code == 200
    assert "Saved at" in response.content.decode()
    assert not Note.objects.filter(owner=alice).exists()


def test_a_malformed_concept_slug_is_a_404(alice_client):
    assert alice_client.post("/notes/concept/NOT_A_SLUG/", {"body": "x"}, **HTMX).status_code == 404


def test_a_note_on_a_concept_that_does_not_exist_is_a_404(alice_client, alice):
    assert alice_client.post(save_url("no-such-concept"), {"body": "x"}, **HTMX).status_code == 404
    assert alice_client.get(save_url("no-such-concept")).status_code == 404
    assert not Note.objects.filter(owner=alice).exists()


def test_a_get_on_the_save_address_shows_the_note_on_its_own_page(alice_client):
    alice_client.post(save_url(), {"body": "my summary"}, **HTMX)
    response = alice_client.get(save_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="note-editor"' in html
    assert ">my summary</textarea>" in html
    assert '<label for="note-editor"' in html
    assert ">Your notes</label>" in html


def test_a_signed_out_autosave_gets_a_401_that_says_so(client):
    response = client.post(save_url(), {"body": "x"}, **HTMX)
    assert response.status_code == 401
    assert "you are signed out" in response.content.decode()


def test_a_signed_out_visit_to_the_note_page_asks_to_sign_in(client):
    response = client.get(save_url())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login") + "?next=")


def test_put_and_delete_on_the_save_address_are_refused(alice_client):
    assert alice_client.put(save_url()).status_code == 405
    assert alice_client.delete(save_url()).status_code == 405


def test_signed_out_visitors_see_the_box_with_links_that_return_to_the_notes(rf: RequestFactory):
    from django.contrib.auth.models import AnonymousUser

    request = rf.get(f"/concepts/{SLUG}/?tab=2")
    request.user = AnonymousUser()
    html = render_to_string("notes/box.html", notes_context(request, SLUG), request=request)
    assert 'data-testid="notes"' in html
    assert "private to you" in html.lower()
    assert f"/accounts/signup/?next=/concepts/{SLUG}/%3Ftab%3D2%23notes" in html
    assert f"/accounts/login/?next=/concepts/{SLUG}/%3Ftab%3D2%23notes" in html
    assert "note-editor" not in html


def test_the_box_shows_the_saved_note_status_and_sanitised_preview(rf: RequestFactory, alice):
    Note.objects.create(owner=alice, concept_slug=SLUG, body="**bold** <img src=x onerror=alert(1)>")
    request = rf.get(f"/concepts/{SLUG}/")
    request.user = alice
    html = render_to_string("notes/box.html", notes_context(request, SLUG), request=request)
    assert 'data-testid="note-status"' in html
    assert "Saved at" in html
    assert '<div id="note-preview" data-testid="note-preview"><div class="notes__rendered" hx-disable>' in html
    assert "<strong>bold</strong> &lt;img src=x onerror=alert(1)&gt;" in html


def test_my_notes_lists_every_concept_with_a_note(alice_client, alice):
    Note.objects.create(owner=alice, concept_slug=SLUG, body="projections lag")
    Note.objects.create(owner=alice, concept_slug="idempotency-keys", body="retry safely")
    html = alice_client.get(reverse("notes:mine")).content.decode()
    assert "projections lag" in html
    assert "retry safely" in html


def test_search_finds_words_in_the_note_and_in_the_concept_name(alice_client, alice):
    Note.objects.create(owner=alice, concept_slug=SLUG, body="projections lag")
    Note.objects.create(owner=alice, concept_slug="idempotency-keys", body="retry safely")
    by_body = alice_client.get(reverse("notes:mine"), {"q": "RETRY"}).content.decode()
    assert "retry safely" in by_body
    assert "projections lag" not in by_body
    by_concept = alice_client.get(reverse("notes:mine"), {"q": "Event Sourcing"}).content.decode()
    assert "projections lag" in by_concept
    assert "retry safely" not in by_concept


def test_an_over_long_search_is_ignored_not_an_error(alice_client):
    assert alice_client.get(reverse("notes:mine"), {"q": "x" * 5000}).status_code == 200


def test_export_is_a_markdown_file_with_one_section_per_concept(alice_client, alice):
    Note.objects.create(owner=alice, concept_slug=SLUG, body="projections lag")
    Note.objects.create(owner=alice, concept_slug="idempotency-keys", body="retry safely")
    response = alice_client.get(reverse("notes:export"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="reqflow-notes-')
    text = response.content.decode()
    assert text.startswith("# My Reqflow notes")
    assert text.count("\n## ") == 2
    positions = [text.index(part) for part in ("## CQRS", "projections lag", "## Idempotency", "retry safely")]
    assert positions == sorted(positions)


def test_the_read_page_shows_the_rendered_note(alice_client, alice):
    note = Note.objects.create(owner=alice, concept_slug=SLUG, body="# Heading")
    html = alice_client.get(reverse("notes:detail", args=[note.pk])).content.decode()
    assert "<h1>Heading</h1>" in html


def test_deleting_asks_first_then_removes_the_note(alice_client, alice):
    note = Note.objects.create(owner=alice, concept_slug=SLUG, body="x")
    assert alice_client.get(reverse("notes:delete", args=[note.pk])).status_code == 200
    assert Note.objects.filter(pk=note.pk).exists()
    assert alice_client.post(reverse("notes:delete", args=[note.pk])).status_code == 302
    assert not Note.objects.filter(pk=note.pk).exists()


def test_staff_with_every_note_permission_still_cannot_see_notes_in_the_admin(django_user_model, alice, client_for):
    note = Note.objects.create(owner=alice, concept_slug=SLUG, body="private")
    staff = django_user_model.objects.create_user("staff", password="x-staff-pass-1", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="notes"))
    client = client_for(staff)
    assert client.get("/admin/notes/note/").status_code == 403
    assert client.get(f"/admin/notes/note/{note.pk}/change/").status_code in (302, 403)
    assert "Private notes" not in client.get("/admin/").content.decode()


def test_a_superuser_can_see_notes_in_the_admin(django_user_model, alice, client_for):
    Note.objects.create(owner=alice, concept_slug=SLUG, body="private")
    root = django_user_model.objects.create_superuser("root", password="x-root-pass-1")
    client = client_for(root)
    response = client.get("/admin/notes/note/")
    assert response.status_code == 200
    assert SLUG in response.content.decode()
