"""{% lab_panel %}: the Try-it lab on a page, so a page (the concept page) can show it without its view
importing the lab."""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from lab.panel import PANEL, panel_for_page

register = template.Library()


@register.simple_tag(takes_context=True)
def lab_panel(context: template.Context) -> SafeString:
    request = context["request"]
    return render_to_string(PANEL, {"lab": panel_for_page(request)}, request=request)
