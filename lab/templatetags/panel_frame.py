"""`lab|panel_frame`: the key of the panel's frame, kept rendered once per key (lab.panel_frame says what it holds)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from django import template

from lab.panel_frame import frame_key

register = template.Library()


@register.filter
def panel_frame(panel: Any) -> tuple[Hashable, ...]:
    return frame_key(panel)
