"""Which concepts a note can belong to, as the concept pages know them."""

from __future__ import annotations

import re

_SLUG = re.compile(r"^[a-z0-9-]{1,80}$")


def concept_exists(slug: str) -> bool:
    # Until the content loader lands, any well-formed slug is accepted; the unique (owner, slug) key
    # still confines each learner to their own rows.
    return bool(_SLUG.fullmatch(slug))


def concept_title(slug: str) -> str:
    return slug.replace("-", " ").capitalize()
