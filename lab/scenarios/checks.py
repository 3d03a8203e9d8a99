"""`manage.py check` for the scenario files: each malformed file by name with its problem (lab.E001), each
scenario whose claim is not on its concept page (lab.E002: the page's text changed, or a typo), two scenarios for
one claim (lab.E003), and each claim of a page with a lab that has no scenario yet (lab.W001)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.html import strip_tags

from concepts import content
from lab.scenarios import catalog

# The sections of a concept page whose list items are claims a scenario can show; every cards section counts too
# (one claim per card, named by its title).
CLAIM_SECTIONS = ("why-use-it", "what-it-costs-you", "gotchas")
_ITEM = re.compile(r"<li>(.*?)</li>", re.DOTALL)
HINT = "See the format at the top of lab/scenarios/catalog.py."


def claims_of(concept: content.Concept) -> dict[str, list[str]]:
    """The claims on a concept page, by section anchor, in page order: list items, or card titles."""
    claims: dict[str, list[str]] = {}
    for section in concept.sections:
        if section.kind == "cards":
            claims[section.anchor] = [card.title for card in section.cards]
        elif section.anchor in CLAIM_SECTIONS:
            items = _ITEM.findall(str(section.html))
            claims[section.anchor] = [" ".join(html.unescape(strip_tags(i)).split()) for i in items]
    return claims


@register("content")
def check_scenario_files(
    *, app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    scenarios, problems = catalog.load_dir(catalog.scenario_dir())
    found: list[CheckMessage] = [
        Error(str(problem), hint=HINT, obj=str(problem.path), id="lab.E001") for problem in problems
    ]
    concepts, _ = content.load_dir(content.content_dir())  # concepts.E001 reports a bad concept file
    return found + _claim_problems(scenarios, concepts)


def _claim_problems(scenarios: dict[str, catalog.Scenario], concepts: dict[str, content.Concept]) -> list[CheckMessage]:
    found: list[CheckMessage] = []
    covered: dict[tuple[str, str, str], str] = {}
    for scenario in scenarios.values():
        name = f"{scenario.id}.json"
        concept = concepts.get(scenario.concept)
        claims = claims_of(concept) if concept is not None else {}
        if scenario.item not in claims.get(scenario.section, []):
            where = f"section {scenario.section!r} of {scenario.concept!r}"
            problem = f"{name}: its claim {scenario.item[:60]!r} is not an item of {where}"
            found.append(Error(problem, hint="Copy the item's text from the concept file.", obj=name, id="lab.E002"))
            continue
        key = (scenario.concept, scenario.section, scenario.item)
        if key in covered:
            problem = f"{name}: the same claim already has the scenario {covered[key]!r}"
            found.append(Error(problem, hint="One scenario per claim.", obj=name, id="lab.E003"))
        covered.setdefault(key, scenario.id)
    for concept in concepts.values():
        if not concept.lab:
            continue
        for section, items in claims_of(concept).items():
            for item in items:
                if (concept.slug, section, item) not in covered:
                    problem = f"{concept.slug}: the claim {item[:60]!r} in {section!r} has no scenario"
                    found.append(Warning(problem, hint=HINT, obj=concept.slug, id="lab.W001"))
    return found
