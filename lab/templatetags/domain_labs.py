"""{% architecture_lab %}: the domain lab a "Where it shows up" card opens, so the concept template can link it
without the concepts app importing the lab.

    {% load domain_labs %}
    {% architecture_lab concept.slug card.title as arch %}   {# a lab.domain_catalog.DomainLab, or None #}
    <a href="{% url 'lab:domain-page' arch.domain %}">Try it: {{ arch.label }}</a>
"""

from __future__ import annotations

from django import template

from lab import domain_catalog
from lab.domain_catalog import DomainLab

register = template.Library()


@register.simple_tag
def architecture_lab(concept: str, card_title: str) -> DomainLab | None:
    if concept != domain_catalog.CONCEPT:
        return None
    return domain_catalog.for_card(card_title)
