"""reqflow/loop_middleware.CSPMiddleware keeps the policy it builds for plain responses, and every response still
carries exactly the header django-csp's own middleware gives it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from csp import middleware as csp
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE
from csp.exceptions import CSPNonceError
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from reqflow import loop_middleware

OURS = loop_middleware.CSPMiddleware
THEIRS = csp.CSPMiddleware


def answered(middleware: type[THEIRS], prepare: Callable[[HttpRequest, HttpResponse], None] | None = None) -> tuple:
    """The request and response after `middleware` ran on a plain GET whose view `prepare` may change."""
    request = RequestFactory().get("/lab/")

    def view(request: HttpRequest) -> HttpResponse:
        response = HttpResponse("ok")
        if prepare:
            prepare(request, response)
        return response

    response = middleware(view)(request)
    return request, response


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    loop_middleware._fixed_policies.cache_clear()
    yield
    loop_middleware._fixed_policies.cache_clear()


def test_a_plain_response_gets_django_csps_header_built_once() -> None:
    _, theirs = answered(THEIRS)
    _, first = answered(OURS)
    kept = loop_middleware._fixed_policies()
    _, second = answered(OURS)
    assert first[HEADER] == second[HEADER] == theirs[HEADER]
    assert "default-src 'self'" in first[HEADER] and "frame-ancestors 'none'" in first[HEADER]
    assert kept is not None and kept[0] == (HEADER, theirs[HEADER])
    built = loop_middleware._fixed_policies.cache_info()
    assert (built.misses, built.hits) == (1, 2)  # built for the first response, kept for the check and the second
    assert (HEADER_REPORT_ONLY in first) == (HEADER_REPORT_ONLY in theirs)


def test_a_request_that_used_its_nonce_gets_it_in_the_header() -> None:
    def use_nonce(request: HttpRequest, response: HttpResponse) -> None:
        response.nonce = str(request.csp_nonce)  # type: ignore[attr-defined]

    answered(OURS)  # a policy kept from a plain response must not stand in for this one
    policy = {"DIRECTIVES": {"default-src": ["'self'"], "script-src": ["'self'", NONCE]}}
    with override_settings(CONTENT_SECURITY_POLICY=policy):
        answered(OURS)
        _, response = answered(OURS, use_nonce)
    assert f"script-src 'self' 'nonce-{response.nonce}'" in response[HEADER]


def test_a_nonce_asked_for_after_the_header_was_written_is_refused() -> None:
    request, _ = answered(OURS)
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("_csp_update", {"img-src": ["https://example.org"]}),
        ("_csp_replace", {"img-src": ["https://example.org"]}),
        ("_csp_config", {"default-src": ["'none'"]}),
        ("_csp_exempt", True),
    ],
)
def test_a_view_that_changed_its_policy_gets_what_django_csp_gives_it(attribute: str, value: object) -> None:
    def change(request: HttpRequest, response: HttpResponse) -> None:
        setattr(response, attribute, value)

    _, ours = answered(OURS, change)
    _, theirs = answered(THEIRS, change)
    assert ours.get(HEADER) == theirs.get(HEADER)
    if attribute != "_csp_exempt":
        assert "example.org" in ours[HEADER] or "default-src 'none'" in ours[HEADER]


def test_a_header_the_view_set_itself_is_left_alone() -> None:
    def own(request: HttpRequest, response: HttpResponse) -> None:
        response[HEADER] = "default-src 'none'"

    _, response = answered(OURS, own)
    assert response[HEADER] == "default-src 'none'"


def test_changed_settings_are_followed_not_the_kept_policy() -> None:
    _, before = answered(OURS)
    with override_settings(CONTENT_SECURITY_POLICY={"DIRECTIVES": {"default-src": ["'none'"]}}):
        _, during = answered(OURS)
    _, after = answered(OURS)
    assert during[HEADER] == "default-src 'none'"
    assert after[HEADER] == before[HEADER] != during[HEADER]


def test_excluded_prefixes_and_debug_go_through_django_csp() -> None:
    policy = {"EXCLUDE_URL_PREFIXES": ["/lab/"], "DIRECTIVES": {"default-src": ["'self'"]}}
    with override_settings(CONTENT_SECURITY_POLICY=policy):
        _, response = answered(OURS)
        assert HEADER not in response
    with override_settings(DEBUG=True):
        _, response = answered(OURS)
        assert loop_middleware._fixed_policies() is None
        assert "default-src 'self'" in response[HEADER]
