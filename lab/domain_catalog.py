"""The three domain labs as the site names them: which concept-page card opens which lab, and each lab's page
title. Data only, so the concept page's "Try it" (lab.templatetags.domain_labs) and the lab pages
(lab.domain_views) agree on one list, and the concept pages still import nothing of the lab.
"""

from __future__ import annotations

from dataclasses import dataclass

CONCEPT = "cqrs-event-sourcing"  # the concept page whose "Where it shows up" cards open these labs
SECTION = "architectures"  # that section's anchor: where each lab's back link returns to


@dataclass(frozen=True)
class DomainLab:
    domain: str  # lab.engine.domains.DOMAINS key; also the URL segment and data-domain
    card: str  # the card's title on the concept page (its `###` heading)
    title: str  # the lab page's heading
    label: str  # the card link's words after "Try it:"
    noun: str  # what the learner holds: "Your <noun>", "the <noun> as it was then"
    unit: str = "event"  # what the log holds, in the words of this domain ("snapshot v=9 + 3 operations")
    late_models: tuple[str, ...] = ()  # read models the learner can add after the fact (lab.domain_labs)


LABS: dict[str, DomainLab] = {
    lab.domain: lab
    for lab in (
        DomainLab(
            "ledger",
            "Payment Gateway",
            "A payment ledger",
            "a payment ledger",
            "payment ledger",
            late_models=("auditor",),
        ),
        DomainLab("orderbook", "Stock Exchange (Matching Engine)", "An order book", "an order book", "order book"),
        DomainLab(
            "document",
            "Google Docs (Realtime Collab)",
            "A shared document",
            "a shared document",
            "shared document",
            unit="operation",
        ),
    )
}


def for_card(card_title: str) -> DomainLab | None:
    """The lab a card of the concept page opens, or None for a card without one."""
    return next((lab for lab in LABS.values() if lab.card == card_title), None)
