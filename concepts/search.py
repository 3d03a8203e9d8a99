"""Word forms for the catalog search: "eventual consistency" finds a page that says "eventually consistent".

A query word matches a concept when it appears in its text as typed (a substring, so "shar" finds "sharding"
while someone is still typing), or when its stem is the stem of a word of the text. `stem` is a deliberately
small suffix stripper for English (Porter's ideas, not his whole algorithm): it only has to give the forms of one
word the same stem, and the text and the query go through the same function, so an odd stem ("replicat") is
harmless. There is no synonym list: a synonym is an editorial choice per concept, a word form is not.
"""

from __future__ import annotations

import re

# (suffix, replacement), tried in order; the first one that leaves a stem of MIN_STEM letters or more applies.
SUFFIXES = (
    ("ization", "iz"),
    ("isation", "iz"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("encies", ""),
    ("ancies", ""),
    ("tions", "t"),
    ("tion", "t"),
    ("ments", ""),
    ("ment", ""),
    ("ness", ""),
    ("ency", ""),
    ("ancy", ""),
    ("ence", ""),
    ("ance", ""),
    ("ingly", ""),
    ("edly", ""),
    ("ings", ""),
    ("ing", ""),
    ("ies", "i"),
    ("ied", "i"),
    ("ly", ""),
    ("ed", ""),
    ("es", ""),
    ("ent", ""),
    ("ant", ""),
    ("s", ""),
)
MIN_STEM = 4
_UNDOUBLED = ("ing", "ings", "ed", "edly", "ingly")  # lagging -> lagg -> lag, but processing -> process
_WORD = re.compile(r"\w+")


def stem(word: str) -> str:
    """The stem of one word: consistency, consistent, consistently -> consist; retry, retries -> retri."""
    word = word.casefold()
    for _ in range(2):  # twice: consistently -> consistent -> consist
        word, stripped = _strip_suffix(word)
        if not stripped:
            break
    if word.endswith("e") and len(word) > MIN_STEM:
        word = word[:-1]  # cache, caching, cached -> cach
    elif word.endswith("y") and len(word) >= MIN_STEM:
        word = word[:-1] + "i"  # retry, retries -> retri
    return word


def _strip_suffix(word: str) -> tuple[str, bool]:
    for suffix, replacement in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) + len(replacement) >= MIN_STEM:
            base = word[: -len(suffix)]
            if suffix == "s" and base.endswith(("s", "u", "i")):
                return word, False  # process, status, analysis are not plurals
            if suffix in _UNDOUBLED and len(base) >= MIN_STEM and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]
            return base + replacement, True
    return word, False


def stems(text: str) -> frozenset[str]:
    """The stems of every word of a text."""
    return frozenset(stem(word) for word in _WORD.findall(text.casefold()))


def term_matches(term: str, haystack: str, haystack_stems: frozenset[str]) -> bool:
    """One query word against a text (casefolded) and its stems: as typed, or as another form of the same word."""
    return term in haystack or stem(term) in haystack_stems
