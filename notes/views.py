"""Private notes: one per learner per concept. Every query is scoped to request.user; a stranger's note is a 404."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from notes.concepts import concept_exists, concept_title, slugs_titled_like
from notes.forms import NoteForm, NoteSearchForm
from notes.models import NOTE_MAX_CHARS, Note
from notes.rendering import plain_excerpt, render_markdown
from reqflow.http import HtmxHttpRequest, safe_next


def notes_context(request: HttpRequest, concept_slug: str) -> dict[str, Any]:
    """Context for templates/notes/box.html on a concept page."""
    here = request.get_full_path()
    context: dict[str, Any] = {
        "notes_concept_slug": concept_slug,
        "notes_signed_in": request.user.is_authenticated,
        "notes_return": f"{here.split('#', 1)[0]}#notes",
        "notes_max_chars": NOTE_MAX_CHARS,
    }
    if not request.user.is_authenticated:
        return context
    note = Note.objects.filter(owner=request.user, concept_slug=concept_slug).first()
    body = note.body if note else ""
    context.update(
        {
            "notes_save_url": reverse("notes:edit", args=[concept_slug]),
            "notes_body": body,
            "notes_preview": render_markdown(body),
            "notes_state": "saved" if note else "empty",
            "notes_saved_at": note.updated_at if note else None,
        }
    )
    return context


def _concept_or_404(slug: str) -> str:
    if not concept_exists(slug):
        raise Http404("No such concept")
    return slug


def _save(owner: Any, slug: str, body: str) -> Note | None:
    """Write the learner's note, or drop it when emptied. Autosave and the leave-page beacon can race to
    create the same row; the unique key turns that into an IntegrityError, and the loser updates instead."""
    if not body.strip():
        Note.objects.filter(owner=owner, concept_slug=slug).delete()
        return None
    for _ in range(2):
        try:
            with transaction.atomic():
                note, _created = Note.objects.update_or_create(owner=owner, concept_slug=slug, defaults={"body": body})
                return note
        except IntegrityError:
            continue
    raise IntegrityError("note save kept colliding")


def _status(request: HttpRequest, state: str, *, saved_at: Any = None, error: str = "", preview: str | None = None,
            status: int = 200) -> HttpResponse:  # fmt: skip
    return render(
        request,
        "notes/_save_response.html",
        {"notes_state": state, "notes_saved_at": saved_at, "notes_error": error, "notes_preview": preview},
        status=status,
    )


@require_http_methods(["GET", "POST"])
def edit(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    _concept_or_404(slug)
    if not request.user.is_authenticated:
        if request.htmx:
            # Signed out in another tab: say so in the status line; the text stays in the textarea.
            return _status(request, "signed-out", status=401)
        return redirect_to_login(reverse("notes:edit", args=[slug]))

    if request.method == "GET":
        context = notes_context(request, slug)
        return render(request, "notes/edit.html", {"concept_title": concept_title(slug), **context})

    form = NoteForm(request.POST)
    if not form.is_valid():
        error = " ".join(str(message) for message in form.errors["body"])
        if request.htmx or request.POST.get("beacon"):
            return _status(request, "error", error=error, status=422)
        context = notes_context(request, slug)
        context.update({"notes_body": request.POST.get("body", ""), "notes_state": "error", "notes_error": error})
        return render(request, "notes/edit.html", {"concept_title": concept_title(slug), **context}, status=422)

    note = _save(request.user, slug, form.cleaned_data["body"])
    if request.POST.get("beacon"):
        # navigator.sendBeacon on leaving the page: nobody reads the answer.
        return HttpResponse(status=204)
    if request.htmx:
        saved_at = note.updated_at if note else timezone.now()
        return _status(request, "saved", saved_at=saved_at, preview=render_markdown(form.cleaned_data["body"]))
    return redirect(safe_next(request, reverse("notes:edit", args=[slug]) + "#notes"))


def _own_notes(request: HttpRequest) -> QuerySet[Note]:
    # Only ever called behind @login_required, so the user has a primary key.
    return Note.objects.filter(owner_id=request.user.pk).exclude(body="")


@login_required
@require_GET
def mine(request: HttpRequest) -> HttpResponse:
    form = NoteSearchForm(request.GET)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    notes = _own_notes(request)
    if query:
        notes = notes.filter(Q(body__icontains=query) | Q(concept_slug__in=slugs_titled_like(query)))
    rows = [
        {"note": note, "title": concept_title(note.concept_slug), "excerpt": plain_excerpt(note.body)} for note in notes
    ]
    return render(
        request,
        "notes/mine.html",
        {"form": form, "query": query, "rows": rows, "total": _own_notes(request).count()},
    )


@login_required
@require_GET
def detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    note = get_object_or_404(Note, pk=pk, owner=request.user)
    return render(
        request,
        "notes/detail.html",
        {"note": note, "title": concept_title(note.concept_slug), "preview": render_markdown(note.body)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    note = get_object_or_404(Note, pk=pk, owner=request.user)
    if request.method == "GET":
        return render(request, "notes/delete.html", {"note": note, "title": concept_title(note.concept_slug)})
    note.delete()
    return redirect("notes:mine")


@login_required
@require_GET
def export(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    lines = [f"# My Reqflow notes\n\nExported {now:%Y-%m-%d %H:%M} UTC.\n"]
    titled = sorted(((concept_title(n.concept_slug), n) for n in _own_notes(request)), key=lambda t: t[0].casefold())
    for title, note in titled:
        lines.append(f"\n## {title}\n\n")
        lines.append(f"Concept: {request.build_absolute_uri(_concept_url(note.concept_slug))}\n\n")
        lines.append(note.body.rstrip("\n") + "\n")
    response = HttpResponse("".join(lines), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="reqflow-notes-{now:%Y-%m-%d}.md"'
    return response


def _concept_url(slug: str) -> str:
    return reverse("concepts:detail", args=[slug])
