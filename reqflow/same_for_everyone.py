"""`{% same_for_everyone key ... %}…{% end_same_for_everyone %}`: a part of a page that is the same for every
visitor, rendered once per process and key; `{% per_visitor %}…{% end_per_visitor %}` inside it marks what is not.

The concept page's article (the product owner's text, its "Try it" buttons, the quiz, the table of contents) is
the same for everyone, yet the template language rendered it on every view: about 3 ms of a 7 ms page, measured
in-process. Now the first view of a page renders it and keeps the result; later views copy it in and render only
the holes (the lab's panel, the notes box), which read the visitor's own sandbox and notes.

What may still differ between two views of the same key, and how each stays right:
- the CSRF token in its forms: rendered as a placeholder, then replaced in every view by what `{% csrf_token %}`
  gives that view (one token per response, as Django's context processor gives);
- the parts inside `{% per_visitor %}`: rendered for each view, with the page's own context (the variables of a
  `{% for %}` around a hole are not there);
- with `partials_vary` after the key, every inline `{% partialdef %}` inside: each is a hole of its own, as if in
  `{% per_visitor %}` (the lab's panel, whose partials are what changes from view to view and push to push);
- anything else must not differ for the same key: the key names what it depends on (the concept and the request's
  path on the concept page); the script prefix, URLconf and language are added to it, and the tag itself (a
  serial number), so a template edited under autoreload starts afresh.
At most MAX_KEPT keys are kept, the least recently shown dropped first (a visitor who makes many lab frames,
one per snapshot interval say, cannot push out the article every view needs). Installed as a template builtin
(settings.TEMPLATES).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import OrderedDict
from typing import Any

from django.template import Context, Library, Node, NodeList, TemplateSyntaxError
from django.template.base import FilterExpression, Parser, Token
from django.template.defaulttags import CsrfTokenNode, ForNode, IfNode
from django.urls import get_script_prefix, get_urlconf
from django.utils.safestring import SafeString
from django.utils.translation import get_language
from template_partials.templatetags.partials import DefinePartialNode

register = Library()

MAX_KEPT = 256
# Never in a page by chance: letters and digits only, so no escaping can change it.
_PLACEHOLDER = "sameforeveryone" + secrets.token_hex(16)
_HOLE = f"<!--{_PLACEHOLDER}-hole-->"
_CSRF_INPUT = f'<input type="hidden" name="csrfmiddlewaretoken" value="{_PLACEHOLDER}">'
_RECORDING = "same_for_everyone_recording"  # the context key under which a recording pass collects its holes

_kept: OrderedDict[tuple[Any, ...], tuple[list[str], list[PerVisitorNode]]] = OrderedDict()
_serials = itertools.count()  # one per tag in a parsed template: unlike id(), never reused by a later one
_lock = threading.Lock()


class PerVisitorNode(Node):
    def __init__(self, nodelist: NodeList) -> None:
        self.nodelist = nodelist

    def render(self, context: Context) -> SafeString:
        holes = context.get(_RECORDING)
        if holes is not None:  # recording the page's fixed part: leave a hole, filled in each view
            holes.append(self)
            # Our own marker, split out again before the page goes out.
            return SafeString(_HOLE)  # nosec B703
        return self.nodelist.render(context)


class SameForEveryoneNode(Node):
    def __init__(self, nodelist: NodeList, key: list[FilterExpression]) -> None:
        self.nodelist = nodelist
        self.key = key
        self.serial = next(_serials)

    def render(self, context: Context) -> SafeString:
        key = (
            self.serial,
            *(part.resolve(context) for part in self.key),
            get_script_prefix(),
            get_urlconf(),
            get_language(),
        )
        with _lock:
            kept = _kept.get(key)
            if kept is not None:
                _kept.move_to_end(key)
        if kept is None:
            kept = self._record(context)
            with _lock:
                _kept[key] = kept
                while len(_kept) > MAX_KEPT:
                    _kept.popitem(last=False)
        chunks, holes = kept
        parts = [chunks[0]]
        for hole, chunk in zip(holes, chunks[1:], strict=True):
            parts.append(hole.render(context))
            parts.append(chunk)
        # Rendered templates and our placeholder's replacement by Django's own token tag, as NodeList.render returns.
        return SafeString(_with_this_views_token("".join(parts), context))  # nosec B703

    def _record(self, context: Context) -> tuple[list[str], list[PerVisitorNode]]:
        holes: list[PerVisitorNode] = []
        with context.push({"csrf_token": _PLACEHOLDER, _RECORDING: holes}):
            fixed = self.nodelist.render(context)
        return fixed.split(_HOLE), holes


def _with_this_views_token(html: str, context: Context) -> str:
    if _PLACEHOLDER not in html:
        return html
    html = html.replace(_CSRF_INPUT, CsrfTokenNode().render(context))
    token = context.get("csrf_token")
    return html.replace(_PLACEHOLDER, str(token) if token else "")  # a bare {{ csrf_token }}, as Django renders it


def _partials_as_holes(nodelist: NodeList, *, in_loop: bool = False) -> None:
    """Wrap every inline partial in `nodelist` (and in the nodes it holds, not in other partials) in a hole."""
    for index, node in enumerate(nodelist):
        if isinstance(node, DefinePartialNode):
            if node.inline:
                if in_loop:  # a hole renders without the loop's variables: refuse rather than render it wrong
                    raise TemplateSyntaxError(f"partial {node.partial_name!r} is inside a loop: it cannot vary")
                nodelist[index] = PerVisitorNode(NodeList([node]))
            continue
        if isinstance(node, PerVisitorNode):  # already a hole
            continue
        # IfNode builds its `nodelist` afresh on each access: its branches are where its nodes live.
        if isinstance(node, IfNode):
            branches = [branch for _, branch in node.conditions_nodelists]
        else:
            branches = [getattr(node, name) for name in node.child_nodelists if getattr(node, name, None)]
        for branch in branches:
            _partials_as_holes(branch, in_loop=in_loop or isinstance(node, ForNode))


@register.tag("same_for_everyone")
def same_for_everyone(parser: Parser, token: Token) -> SameForEveryoneNode:
    bits = token.split_contents()
    partials_vary = bits[-1] == "partials_vary"
    if partials_vary:
        bits.pop()
    if len(bits) < 2:
        raise TemplateSyntaxError("{% same_for_everyone %} needs a key: what the part depends on")
    nodelist = parser.parse(("end_same_for_everyone",))
    parser.delete_first_token()
    if partials_vary:
        _partials_as_holes(nodelist)
    return SameForEveryoneNode(nodelist, [parser.compile_filter(bit) for bit in bits[1:]])


@register.tag("per_visitor")
def per_visitor(parser: Parser, token: Token) -> PerVisitorNode:
    if len(token.split_contents()) != 1:
        raise TemplateSyntaxError("{% per_visitor %} takes no arguments")
    nodelist = parser.parse(("end_per_visitor",))
    parser.delete_first_token()
    return PerVisitorNode(nodelist)
