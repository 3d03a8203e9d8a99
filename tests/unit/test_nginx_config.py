"""The nginx configuration `make cluster` renders from deploy/nginx.conf.template (docs/deploy.md's sample)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from deploy import cluster


@pytest.fixture
def rendered(tmp_path, monkeypatch):
    monkeypatch.delenv("REQUEST_BODY_MAX_BYTES", raising=False)
    return cluster.nginx_config(tmp_path, 8000, [8001, 8002], tmp_path)


def test_every_placeholder_is_filled_and_each_web_process_is_an_upstream_server(rendered):
    assert "{{" not in rendered and "}}" not in rendered
    assert re.findall(r"server (127\.0\.0\.1:\d+)", rendered) == ["127.0.0.1:8001", "127.0.0.1:8002"]
    assert "listen 127.0.0.1:8000;" in rendered


def test_nginx_refuses_exactly_the_bodies_the_app_refuses(rendered):
    assert f"client_max_body_size {settings.DATA_UPLOAD_MAX_MEMORY_SIZE};" in rendered


def test_websockets_pass_the_upgrade_and_the_client_cannot_choose_its_forwarded_address(rendered):
    socket = rendered[rendered.index("location /ws/") :]
    socket = socket[: socket.index("}")]
    assert "proxy_set_header Upgrade $http_upgrade;" in socket
    assert "proxy_set_header Connection $connection_upgrade;" in socket
    assert "proxy_read_timeout 1h;" in socket
    assert "$proxy_add_x_forwarded_for" not in rendered
    assert rendered.count("proxy_set_header X-Forwarded-For $remote_addr;") == 2


def test_a_missing_value_is_an_error_not_a_literal_placeholder():
    with pytest.raises(ValueError, match=r"\{\{ port \}\}"):
        cluster.render("listen {{ port }};", {})


def test_one_failed_or_slow_answer_never_takes_a_web_process_out_of_rotation(rendered):
    # max_fails=1 fail_timeout=5s turned one error per process into 5 s of "no live upstreams" (issue 12).
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+(.*);$", rendered, re.MULTILINE)
    assert servers == [" max_fails=0", " max_fails=0"]
    assert "fail_timeout" not in rendered


def test_a_request_moves_to_the_next_process_only_on_an_error_and_a_post_never_twice(rendered):
    retries = re.findall(r"^\s*proxy_next_upstream (.*);$", rendered, re.MULTILINE)
    assert retries == ["error"]  # not timeout (a slow answer), not http_500 (the application's answer)
    assert not re.search(
        r"^[^#]*non_idempotent", rendered, re.MULTILINE
    )  # nginx then never passes a POST it already sent to the next server
    assert re.findall(r"^\s*proxy_next_upstream_tries (\d+);$", rendered, re.MULTILINE) == ["2"]
