"""lab.types.TemplateReadable: the panel's view objects answer `view["name"]` as `view.name`, so the template
language's first try at every dotted lookup succeeds; templates render exactly as before."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.template import engines

from lab import panel, predictions, share, types
from lab.types import ReplayFrame, TemplateReadable


@dataclass(frozen=True)
class Plain:
    name: str = "deposit"

    @property
    def broken(self) -> str:
        raise AttributeError("a bug inside a property")


@dataclass(frozen=True)
class Readable(TemplateReadable):
    name: str = "deposit"

    @property
    def broken(self) -> str:
        raise AttributeError("a bug inside a property")


def render(source: str, view: object) -> str:
    return engines["django"].from_string(source).render({"v": view})


def test_a_name_reads_as_the_attribute_and_a_missing_one_is_a_key_error() -> None:
    view = Readable()
    assert view["name"] == "deposit"
    with pytest.raises(KeyError):
        view["nope"]
    with pytest.raises(KeyError):
        view[0]  # type: ignore[index]


def test_it_is_not_iterable_through_getitem() -> None:
    with pytest.raises(TypeError):
        iter(Readable())
    with pytest.raises(TypeError):
        "name" in Readable()  # noqa: B015


def test_a_frame_still_unpacks_as_its_pair() -> None:
    state = object()
    frame = ReplayFrame(state=state, event=None, head_version=0, amount=Decimal(0))  # type: ignore[arg-type]
    first, event = frame
    assert first is state and event is None


@pytest.mark.parametrize("source", ["[{{ v.name }}]", "[{{ v.nope }}]", "[{{ v.name.upper }}]", "[{{ v.0 }}]"])
def test_templates_render_as_they_did_for_a_plain_object(source: str) -> None:
    assert render(source, Readable()) == render(source, Plain())


def test_an_attribute_error_inside_a_property_still_surfaces() -> None:
    for view in (Plain(), Readable()):
        with pytest.raises(AttributeError, match="a bug inside a property"):
            render("{{ v.broken }}", view)


# lab.missions is not swept: its dataclasses are what the checks read; the missions the panel renders are
# lab.types.MissionView and MissionProgress.
@pytest.mark.parametrize("module", [types, panel, predictions, share], ids=lambda m: m.__name__)
def test_every_view_dataclass_the_panel_renders_is_readable(module: object) -> None:
    """A new view type that forgets the mixin renders correctly, only slower: this names it."""
    found = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if dataclasses.is_dataclass(cls) and cls.__module__ == getattr(module, "__name__", "")
    ]
    assert found
    assert [cls.__name__ for cls in found if not issubclass(cls, TemplateReadable)] == []


def test_a_panels_errors_answer_empty_for_a_field_without_one() -> None:
    """A caller may pass a plain dict; the panel keeps it as Reasons, whose missing names read as ""."""
    view = panel.Panel(state=None, next="/", errors={"amount": "Enter an amount."})  # type: ignore[arg-type]
    assert isinstance(view.errors, types.Reasons)
    assert view.errors["lag"] == "" and "lag" not in view.errors
    assert render("[{{ v.errors.amount }}|{{ v.errors.lag }}]", view) == "[Enter an amount.|]"
    assert isinstance(panel.Panel(state=None, next="/").errors, types.Reasons)  # type: ignore[arg-type]
