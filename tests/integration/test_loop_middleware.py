"""Django's compute-only middleware hooks run on the event loop under ASGI (reqflow/loop_middleware.py), and still
do exactly their job there: CSRF refusals, security headers, sessions saved, users known, bad hosts refused.

Every request here goes through the real ASGI application (Channels' HttpCommunicator or Django's AsyncClient),
so the chain runs in async mode as under daphne; the sync test client would never reach the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import HttpCommunicator
from django.contrib.sessions.models import Session
from django.core.checks.security import base, csrf
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, override_settings

from reqflow import asgi, loop_middleware
from reqflow.middleware_list import STAND_INS, MiddlewareList

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/concepts/cqrs-event-sourcing/"
HOST = [(b"host", b"127.0.0.1")]


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of every function sent to a thread (sync_to_async) while the test runs."""
    sent: list[str] = []
    original = SyncToAsync.__call__

    async def counted(self: SyncToAsync, *args: object, **kwargs: object) -> object:
        sent.append(getattr(self.func, "__qualname__", type(self.func).__qualname__))  # repr() may query
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    yield sent


async def get(path: str, headers: list[tuple[bytes, bytes]] = HOST) -> dict:
    request = HttpCommunicator(asgi.application, "GET", path, headers=headers)
    answer = await request.get_response(timeout=30)
    await request.wait()
    return answer


async def test_a_page_view_hops_to_the_sync_thread_for_its_view_not_for_each_middleware(hops):
    answer = await get(PAGE)
    assert answer["status"] == 200
    assert "concept_detail" in hops, hops  # the spy sees the hops there are: this test can fail
    middleware_hops = [name for name in hops if "Middleware." in name]
    assert middleware_hops == [], hops
    # Django's own: request_started, the view, closing the response (request_finished). It was 18 with Django's
    # middlewares, one per hook.
    assert len(hops) <= 3, hops


async def test_a_changed_session_is_saved_on_the_sync_thread_and_its_cookie_set(hops):
    client = AsyncClient(enforce_csrf_checks=True)
    page = await client.get(PAGE)
    token = page.cookies["csrftoken"].value
    answer = await client.post(
        "/lab/command/", {"kind": "deposit", "amount": "5"}, headers={"X-CSRFToken": token, "HX-Request": "true"}
    )
    assert answer.status_code == 200, answer.content[:300]
    assert "SessionMiddleware.process_response" in hops  # the save, off the event loop
    key = answer.cookies["sessionid"].value
    assert await Session.objects.filter(session_key=key).aexists()
    assert "Cookie" in answer.headers["Vary"]


async def test_a_post_without_the_csrf_token_is_refused_on_the_event_loop(hops):
    client = AsyncClient(enforce_csrf_checks=True)
    await client.get(PAGE)
    answer = await client.post("/lab/command/", {"kind": "deposit", "amount": "5"}, headers={"HX-Request": "true"})
    assert answer.status_code == 403
    assert not [name for name in hops if name.startswith("CsrfViewMiddleware.")], hops


async def test_the_security_headers_are_set_on_the_event_loop():
    answer = await get(PAGE)
    headers = {k.decode().lower(): v.decode() for k, v in answer["headers"]}
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["cross-origin-opener-policy"] == "same-origin"


async def test_an_unknown_host_is_refused_with_400():
    answer = await get(PAGE, headers=[(b"host", b"evil.example")])
    assert answer["status"] == 400


async def test_a_signed_in_learner_is_known_and_a_visitor_is_sent_to_sign_in(django_user_model):
    user = await django_user_model.objects.acreate_user(username="carol", password="correct-horse-battery-3")
    visitor = await AsyncClient().get("/notes/")
    assert visitor.status_code == 302 and "/accounts/login/" in visitor.headers["Location"]
    client = AsyncClient()
    await client.aforce_login(user)
    mine = await client.get("/notes/")
    assert mine.status_code == 200
    assert "carol" in mine.content.decode()


def test_the_loop_versions_are_the_middlewares_they_stand_in_for():
    for django_path, ours in STAND_INS.items():
        module, _, name = django_path.rpartition(".")
        original = getattr(__import__(module, fromlist=[name]), name)
        standing_in = getattr(loop_middleware, ours.rpartition(".")[2])
        assert issubclass(standing_in, original), ours


def test_djangos_deploy_checks_see_the_loop_versions_and_still_fire_without_them():
    everything = MiddlewareList(STAND_INS.values())
    with override_settings(MIDDLEWARE=everything, SECURE_HSTS_SECONDS=0, DEBUG=False):
        assert base.check_security_middleware(None) == []
        assert csrf.check_csrf_middleware(None) == []
        # Seen as installed, so the checks that depend on it run: here HSTS is off, and W004 says so.
        assert [w.id for w in base.check_sts(None)] == ["security.W004"]
    without = MiddlewareList(p for p in STAND_INS.values() if not p.endswith(".SecurityMiddleware"))
    with override_settings(MIDDLEWARE=without):
        assert [w.id for w in base.check_security_middleware(None)] == ["security.W001"]
    with override_settings(MIDDLEWARE=list(STAND_INS.values())):  # a plain list: Django would not see them
        assert [w.id for w in base.check_security_middleware(None)] == ["security.W001"]


def test_the_csrf_check_refuses_to_run_on_the_event_loop_with_the_token_in_the_session():
    async def view(request: object) -> None:
        return None

    with override_settings(CSRF_USE_SESSIONS=True), pytest.raises(ImproperlyConfigured):
        loop_middleware.CsrfViewMiddleware(view)
