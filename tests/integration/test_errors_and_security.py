"""Error pages, the production security check, CSRF on htmx requests, and a page that loads nothing from elsewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["/", "/?q=event", "/concepts/cqrs-event-sourcing/", "/concepts/no-such-concept/"]


def explode(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret detail: the ledger table is on fire")


# A test-only URLconf: the real site plus one view that raises.
urlpatterns = [path("boom/", explode), path("", include("reqflow.urls"))]
handler404 = "concepts.views.page_not_found"
handler500 = "concepts.views.server_error"


@pytest.mark.urls(__name__)
def test_a_server_error_gives_the_styled_500_page_without_details(db):
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "<h1>Something went wrong</h1>" in page
    assert "/static/css/site.css" in page
    assert "secret detail" not in page and "RuntimeError" not in page and "Traceback" not in page


@pytest.mark.django_db
def test_an_unknown_address_gives_the_styled_404_page(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Page not found</h1>" in page and 'class="site-header"' in page


def test_check_deploy_reports_nothing_with_production_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REQFLOW_", "DEBUG"))}
    env.update(
        DEBUG="0",
        SECRET_KEY="prod-" + "x7Q2v9Lm3Rt8Wk1Zp4Nb6Yc0Hd5Jf" * 2,
        ALLOWED_HOSTS="reqflow.example",
        CSRF_TRUSTED_ORIGINS="https://reqflow.example",
        HTTPS="1",
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.django_db
def test_every_htmx_request_carries_the_csrf_token_from_the_body():
    client = Client(enforce_csrf_checks=True)
    page = client.get("/").content.decode()
    token = re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", page)
    assert token and len(token.group(1)) >= 32
    assert "csrftoken" in client.cookies


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGES)
def test_pages_load_nothing_from_another_site_and_have_no_inline_script_or_style(client, url):
    response = client.get(url)
    page = response.content.decode()
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    for tag in re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*>", page):
        assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", tag), tag
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline <script> is blocked by the CSP"
    assert not re.search(r"\sstyle=", page), "inline style attributes are blocked by the CSP"
    assert not re.search(r"<style\b", page)


@pytest.mark.django_db
def test_pages_have_a_favicon_a_language_and_a_viewport(client):
    page = client.get("/").content.decode()
    assert '<html lang="en">' in page
    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
