from __future__ import annotations

from typing import Any

from django.core.exceptions import BadRequest, DisallowedHost, TooManyFieldsSent
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseServerError
from django.shortcuts import render
from django.template import loader
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from concepts import content
from reqflow.http import HtmxHttpRequest, error_fragment

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


# What a 400 says, by what went wrong; never the exception's own text, which can quote the request (a host name).
BAD_REQUEST_MESSAGES: tuple[tuple[type[Exception], str], ...] = (
    (DisallowedHost, "This site does not answer to that host name."),
    (TooManyFieldsSent, "The form sent too many fields."),
    (BadRequest, "The form could not be read: send it URL-encoded or as multipart/form-data, in UTF-8."),
)
BAD_REQUEST_MESSAGE = "The request could not be understood."


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 400 handler. It reads nothing but headers: the body is often what was bad, and Django's own handler
    (csrf-protected) read it again through the CSRF check, so a form in UTF-16 ended as a 500."""
    message = next((text for kind, text in BAD_REQUEST_MESSAGES if isinstance(exception, kind)), BAD_REQUEST_MESSAGE)
    if request.headers.get("HX-Request") == "true":
        return HttpResponseBadRequest(error_fragment(request, message))
    return HttpResponseBadRequest(loader.get_template("400.html").render({"message": message}))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No request context: whatever broke (the database, a context processor) must not break this page too.
    return HttpResponseServerError(loader.get_template("500.html").render())
