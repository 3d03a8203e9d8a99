from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template import loader
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from concepts import content
from reqflow.http import HtmxHttpRequest

MAX_QUERY_LENGTH = 100


@require_safe
@vary_on_headers("HX-Request")
def catalog(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:MAX_QUERY_LENGTH]
    library = content.library()
    found = library.search(query)
    context = {"q": query, "groups": library.group(found), "found": len(found), "total": len(library.concepts)}
    # A history restore needs the whole page; only the search box's own requests get the partial.
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "concepts/catalog.html#results", context)
    return render(request, "concepts/catalog.html", context)


@require_safe
def concept_detail(request: HttpRequest, slug: str) -> HttpResponse:
    library = content.library()
    concept = library.get(slug)
    if concept is None:
        raise Http404(f"No concept {slug!r}")
    # The page composes the lab panel and the notes box with their own template tags ({% lab_panel %},
    # {% notes_box %}): this app knows neither.
    context: dict[str, Any] = {"concept": concept, "related": [library.concepts[s] for s in concept.related]}
    return render(request, "concepts/concept_detail.html", context)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No request context: whatever broke (the database, a context processor) must not break this page too.
    return HttpResponseServerError(loader.get_template("500.html").render())
