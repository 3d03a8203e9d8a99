"""{% notes_box slug %}: the learner's private note on a concept, so the concept page can show it without its
view importing the notes app."""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from notes.views import notes_context

register = template.Library()


@register.simple_tag(takes_context=True)
def notes_box(context: template.Context, concept_slug: str) -> SafeString:
    request = context["request"]
    return render_to_string("notes/box.html", notes_context(request, concept_slug), request=request)
