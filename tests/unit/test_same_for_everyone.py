"""reqflow/same_for_everyone.py: a part of a page rendered once per key, with per-visitor holes and each view's own
CSRF token; the same output as without the tags."""

from __future__ import annotations

import pytest
from django.template import TemplateSyntaxError, engines

from reqflow import same_for_everyone

PAGE = (
    "<main>{% same_for_everyone slug %}<h1>{{ title }}</h1>"
    "<form>{% csrf_token %}<button>Try {{ slug }}</button></form>"
    "{% for i in items %}<p>{{ i }}</p>"
    "{% if forloop.first %}{% per_visitor %}[{{ who }}]{% end_per_visitor %}{% endif %}"
    "{% endfor %}<footer data-token='{{ csrf_token }}'>{% per_visitor %}{{ who|upper }}{% end_per_visitor %}</footer>"
    "{% end_same_for_everyone %}</main>"
)
PLAIN = PAGE.replace("{% same_for_everyone slug %}", "").replace("{% end_same_for_everyone %}", "")
PLAIN = PLAIN.replace("{% per_visitor %}", "").replace("{% end_per_visitor %}", "")


_parsed: dict[str, object] = {}


def render(source: str, **context: object) -> str:
    """Each source parsed once, as the cached template loader keeps a site's templates."""
    template = _parsed.setdefault(source, engines["django"].from_string(source))
    return template.render(context)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def nothing_kept():
    same_for_everyone._kept.clear()
    yield
    same_for_everyone._kept.clear()


def view(source: str = PAGE, **extra: object) -> str:
    context = {"slug": "cqrs", "title": "CQRS & ES", "items": ["a", "b"], "who": "ann", "csrf_token": "TOKENann"}
    return render(source, **(context | extra))


def test_the_output_is_what_the_template_gives_without_the_tags():
    assert view() == view(PLAIN)
    assert view() == view(PLAIN)  # and again from what was kept
    assert "TOKENann" in view() and "&amp;" in view()  # the token in the form and bare; escaping as before


def test_the_fixed_part_is_rendered_once_per_key_and_the_holes_on_every_view():
    first = view()
    later = view(title="changed", who="bob", csrf_token="TOKENbob")
    assert "<h1>CQRS &amp; ES</h1>" in later  # kept: the fixed part was not rendered again
    assert "[bob]" in later and "BOB</footer>" in later and "ann" not in later.lower()
    assert 'value="TOKENbob"' in later and "data-token='TOKENbob'" in later and "TOKENann" not in later
    assert first != later and len(same_for_everyone._kept) == 1


def test_another_key_renders_its_own_part():
    view()
    other = view(slug="raft", title="Raft")
    assert "<h1>Raft</h1>" in other and "Try raft" in other
    assert len(same_for_everyone._kept) == 2


def test_no_token_in_the_context_gives_what_djangos_tag_gives():
    assert view(csrf_token="") == view(PLAIN, csrf_token="")


def test_at_most_max_kept_parts_are_kept(monkeypatch):
    monkeypatch.setattr(same_for_everyone, "MAX_KEPT", 3)
    for n in range(10):
        assert f"Try s{n}" in view(slug=f"s{n}")
    assert len(same_for_everyone._kept) == 3


def test_the_least_recently_shown_part_goes_first(monkeypatch):
    monkeypatch.setattr(same_for_everyone, "MAX_KEPT", 3)
    for slug in ("s0", "s1", "s2", "s0", "s3"):  # s0 shown again just before s3 comes
        view(slug=slug)
    assert sorted(key[1] for key in same_for_everyone._kept) == ["s0", "s2", "s3"]


PARTIALS = (
    "{% load partials %}{% same_for_everyone slug partials_vary %}<h1>{{ title }}</h1>"
    "{% if slug %}{% partialdef count inline %}<p id=count>{{ who }}: {{ items|length }}</p>{% endpartialdef %}"
    "{% endif %}"
    "{% partialdef hidden %}{{ who }}{% endpartialdef %}{% end_same_for_everyone %}"
)


def test_with_partials_vary_each_inline_partial_is_a_hole():
    assert view(PARTIALS) == "<h1>CQRS &amp; ES</h1><p id=count>ann: 2</p>"
    later = view(PARTIALS, title="changed", who="bob", items=[1, 2, 3])
    assert later == "<h1>CQRS &amp; ES</h1><p id=count>bob: 3</p>"  # the frame kept, the partial rendered
    assert len(same_for_everyone._kept) == 1


def test_a_partial_inside_a_loop_cannot_be_a_hole():
    source = (
        "{% load partials %}{% same_for_everyone slug partials_vary %}{% for x in items %}"
        "{% partialdef row inline %}{{ x }}{% endpartialdef %}{% endfor %}{% end_same_for_everyone %}"
    )
    with pytest.raises(TemplateSyntaxError, match="inside a loop"):
        render(source)


@pytest.mark.parametrize(
    "source",
    [
        "{% same_for_everyone %}x{% end_same_for_everyone %}",
        "{% same_for_everyone k %}{% per_visitor x %}{% end_per_visitor %}{% end_same_for_everyone %}",
    ],
)
def test_a_missing_key_or_an_argument_to_per_visitor_is_a_syntax_error(source):
    with pytest.raises(TemplateSyntaxError):
        render(source)
