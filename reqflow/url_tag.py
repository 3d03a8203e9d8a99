"""`{% url %}` that reverses a fixed route once per process instead of on every render.

The lab's panel names about 35 routes (every form's action and hx-post) and the concept page about 70, and each
push re-renders the live parts that hold some of them. Django's tag reverses on every render, at about 15 µs
each: a tenth of a page's time. A route written as a literal name with no arguments (`{% url 'lab:command' %}`)
always reverses to the same path for the same script prefix, URLconf, application instance and language, so its
answer is kept per those (at most MAX_KEPT answers). Anything else, a name in a variable or a route with
arguments, is Django's tag unchanged; so are the error for an unknown route, `as` and autoescaping.

Installed as a template builtin (settings.TEMPLATES), so it replaces the built-in tag in every template.
"""

from __future__ import annotations

from typing import Any

from django.template import Context, Library, defaulttags
from django.template.base import Parser, Token
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape
from django.utils.translation import get_language

register = Library()

MAX_KEPT = 1024
_kept: dict[tuple[Any, ...], str] = {}


def _current_app(context: Context) -> str | None:
    """The application instance a namespaced route resolves in, as Django's tag finds it: the one the view set,
    else the namespace the request resolved to."""
    request = getattr(context, "request", None)
    app = getattr(request, "current_app", None)
    if app is not None:
        return str(app)
    match = getattr(request, "resolver_match", None)
    return getattr(match, "namespace", None)


class FixedRouteNode(defaulttags.URLNode):
    def render(self, context: Context) -> str:
        name = self.view_name.var
        if self.args or self.kwargs or self.view_name.filters or not isinstance(name, str):
            return str(super().render(context))
        key = (name, _current_app(context), get_script_prefix(), get_urlconf(), get_language())
        url = _kept.get(key)
        if url is None:
            try:
                url = reverse(name, current_app=key[1])
            except NoReverseMatch:
                if self.asvar is None:
                    raise  # as Django's tag does; with `as`, the variable is set to "" (and nothing is kept)
                url = ""
            else:
                if len(_kept) >= MAX_KEPT:
                    _kept.clear()
                _kept[key] = url
        if self.asvar:
            context[self.asvar] = url
            return ""
        return str(conditional_escape(url)) if context.autoescape else url


@register.tag
def url(parser: Parser, token: Token) -> defaulttags.URLNode:
    node = defaulttags.url(parser, token)
    return FixedRouteNode(node.view_name, node.args, node.kwargs, node.asvar)
