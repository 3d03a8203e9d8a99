"""{% scenarios_for %} and {% scenario_for %}: the "Try it" scenarios of a concept page's claims, so the concept
template can put a link beside each claim without the concepts app importing the lab.

    {% load lab_scenarios %}
    {% scenarios_for concept.slug section.anchor as tries %}        {# the section's scenarios, in page order #}
    {% scenario_for concept.slug section.anchor card.title as try %}  {# one claim's scenario, or None #}

Each is a lab.scenarios.catalog.Scenario: `id` (post it as `scenario` to {% url 'lab:scenario' %}), `title`,
`item` (the claim's text), `notice`.
"""

from __future__ import annotations

import functools
from pathlib import Path

from django import template

from concepts import content
from lab.scenarios import catalog
from lab.scenarios.catalog import Scenario
from lab.scenarios.checks import claims_of

register = template.Library()


@register.simple_tag
def scenarios_for(concept: str, section: str) -> list[Scenario]:
    return list(_scenarios(catalog.scenario_dir(), content.content_dir(), concept, section))


@functools.cache
def _scenarios(scenario_dir: Path, content_dir: Path, concept: str, section: str) -> tuple[Scenario, ...]:
    # Both folders are read once per process, so a section's scenarios are worked out once too (a concept page
    # asks for each section's and each card's on every view); the folders are in the key, so settings that point
    # elsewhere (the tests') get their own.
    found = [s for s in catalog.catalog().values() if s.concept == concept and s.section == section]
    page = content.library().get(concept)
    order = claims_of(page).get(section, []) if page is not None else []
    return tuple(sorted(found, key=lambda s: order.index(s.item) if s.item in order else len(order)))


@register.simple_tag
def scenario_for(concept: str, section: str, item: str) -> Scenario | None:
    return next((s for s in scenarios_for(concept, section) if s.item == item), None)
