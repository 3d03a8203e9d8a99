"""reqflow/url_tag.py: `{% url %}` keeps the reversed path of a fixed route, and otherwise answers as Django's."""

from __future__ import annotations

import uuid

import pytest
from django.template import engines
from django.template.base import Template as DjangoTemplate
from django.urls import NoReverseMatch, reverse, set_script_prefix

from reqflow import url_tag


def render(source: str, **context: object) -> str:
    return engines["django"].from_string(source).render(context)


@pytest.fixture(autouse=True)
def nothing_kept():
    url_tag._kept.clear()
    yield
    url_tag._kept.clear()
    set_script_prefix("/")


def test_it_is_the_url_tag_every_template_uses():
    template: DjangoTemplate = engines["django"].from_string("{% url 'lab:command' %}").template
    assert isinstance(template.nodelist[0], url_tag.FixedRouteNode)


def test_a_fixed_route_answers_as_reverse_and_is_kept():
    assert render("{% url 'lab:command' %}") == reverse("lab:command")
    assert render("{% url 'lab:command' %}") == reverse("lab:command")
    assert [key[0] for key in url_tag._kept] == ["lab:command"]


def test_as_and_an_unknown_route_behave_as_with_djangos_tag():
    assert render("{% url 'lab:command' as where %}<{{ where }}>") == f"<{reverse('lab:command')}>"
    assert render("{% url 'unknown-route' as where %}[{{ where }}]") == "[]"
    assert [key[0] for key in url_tag._kept] == ["lab:command"]  # an unknown route is never kept
    with pytest.raises(NoReverseMatch):
        render("{% url 'unknown-route' %}")


def test_routes_with_arguments_and_names_in_variables_are_reversed_each_time():
    one, two = uuid.UUID(int=1), uuid.UUID(int=2)
    assert render("{% url 'notes:detail' pk %}", pk=one) == reverse("notes:detail", args=[one])
    assert render("{% url 'notes:detail' pk %}", pk=two) == reverse("notes:detail", args=[two])
    assert render("{% url name %}", name="lab:command") == reverse("lab:command")
    assert render("{% url name %}", name="lab:query") == reverse("lab:query")
    assert not url_tag._kept


def test_a_site_under_a_script_prefix_gets_its_own_paths():
    plain = render("{% url 'lab:command' %}")
    set_script_prefix("/reqflow/")
    assert render("{% url 'lab:command' %}") == "/reqflow" + plain
    set_script_prefix("/")
    assert render("{% url 'lab:command' %}") == plain


def test_what_it_keeps_is_bounded(monkeypatch):
    monkeypatch.setattr(url_tag, "MAX_KEPT", 3)
    for n in range(10):
        set_script_prefix(f"/p{n}/")
        assert render("{% url 'lab:command' %}") == reverse("lab:command") == f"/p{n}/lab/command/"
        assert len(url_tag._kept) <= 3
