from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def catalog(request: HttpRequest) -> HttpResponse:
    return render(request, "concepts/catalog.html", {})


def concept_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "concepts/concept_detail.html", {})


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", status=500)
