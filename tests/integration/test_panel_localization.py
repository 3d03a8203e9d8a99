"""The lab's panel prints its numbers without localization (lab.panel.render_panel, `localize off` in the panel's
template): in our locale that must change no character, only skip the locale's number formatting (about 5% of a
push's time, measured in one process with it on and off in turn). A locale or setting that would change them (a
thousands separator, another decimal mark) fails here, and then the panel's numbers need formatting of their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.template import engines
from django.template.context import make_context
from django.template.loader import get_template

from lab.panel import LIVE_PARTS, PANEL, Panel, build_panel, render_panel
from lab.sandboxes import sandbox_for_session_key
from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.django_db(transaction=True)]

# Over a thousand dollars and a snapshot (taken every 10 events): grouping would show in the balances if it applied.
DEPOSITS = ["900", "1234.5", "0.05", *["77"] * 9]


def _panel() -> Panel:
    client = visitor()  # lag 2 s: the read side stays behind, so tokens, countdowns and a prediction show too
    for amount in DEPOSITS:
        response = client.post("/lab/command/", {"kind": "deposit", "amount": amount}, HTTP_HX_REQUEST="true",
                               HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)  # fmt: skip
        assert response.status_code == 200, response.content[:300]
    sandbox = sandbox_for_session_key(client.session.session_key)
    return build_panel(None, sandbox, next_url="/lab/")


def test_the_whole_panel_reads_the_same_with_its_numbers_localized():
    panel = _panel()
    source = Path(settings.BASE_DIR, "templates", PANEL).read_text()
    localized_source = source.replace("{% localize off %}", "").replace("{% endlocalize %}", "")
    assert localized_source != source, "the panel's template no longer turns localization off"
    localized = engines["django"].from_string(localized_source).render({"lab": panel, "oob": False})
    rendered = render_panel(PANEL, {"lab": panel, "oob": False})
    assert "$2,827.55" in rendered and 'data-testid="snapshot-row"' in rendered and "lab-token" in rendered
    assert rendered == localized


@pytest.mark.parametrize("name", LIVE_PARTS)
def test_each_pushed_part_reads_the_same_with_its_numbers_localized(name):
    panel = _panel()
    template = get_template(f"{PANEL}#{name}").template  # type: ignore[attr-defined]
    localized = template.render(make_context({"lab": panel, "oob": True}, None, use_l10n=True))
    assert render_panel(f"{PANEL}#{name}", {"lab": panel, "oob": True}) == localized
