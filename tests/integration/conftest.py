"""Fixtures shared by the integration tests: a projector on the test's event loop, closing the connection of
asgiref's shared thread, and clients signed in as a given user. Plain helpers live in lab_events.py."""

from __future__ import annotations

import asyncio

import pytest
from django.test import Client

from lab.projector import Projector
from tests.integration.lab_events import close_sync_to_async_connections


@pytest.fixture
def close_thread_connections():
    """For async tests (`pytest.mark.usefixtures("close_thread_connections")`): after the test, close the
    connection asgiref's shared thread opened for sync_to_async calls. That thread outlives the test, and
    PostgreSQL will not drop the test database while its session is open."""
    yield
    close_sync_to_async_connections()


@pytest.fixture
async def running():
    """Start projectors on the test's event loop, the way the embedded one runs on daphne's: `running(**options)`.
    Each is stopped, and its task awaited, after the test."""
    started: list[tuple[Projector, asyncio.Task]] = []

    def start(**kwargs) -> Projector:
        p = Projector(**{"fallback_poll_s": 30.0, **kwargs})
        started.append((p, asyncio.ensure_future(p.run())))
        return p

    yield start
    for p, task in started:
        p.stop()
        await asyncio.wait_for(task, 10)


@pytest.fixture
def client_for():
    """A new test client (another browser) signed in as the given user: `client_for(staff)`, or
    `client_for(alice, enforce_csrf_checks=True)`."""

    def make(user, **options) -> Client:
        client = Client(**options)
        client.force_login(user)
        return client

    return make
