"""{% lab_panel %}: the Try-it lab on a page, so a page (the concept page) can show it without its view
importing the lab."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from lab.panel import PANEL, panel_for_page, render_panel

register = template.Library()


@register.simple_tag(takes_context=True)
def lab_panel(context: template.Context) -> SafeString:
    request = context["request"]
    # `oob` is given though false: every partial asks for it, and a missing name is a raised and caught exception
    # in the template engine each time (30 per page: 1-4% of the page's time in-process, measured alternately).
    return render_panel(PANEL, {"lab": panel_for_page(request), "oob": False}, request)
