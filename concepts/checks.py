"""`manage.py check` reads every concept file and reports each problem with the file that has it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, register

from concepts import content


@register("content")
def check_concept_files(
    *, app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    _, problems = content.load_dir(content.content_dir())
    return [
        Error(
            str(problem),
            hint="See the format at the top of concepts/content.py.",
            obj=str(problem.path),
            id="concepts.E001",
        )
        for problem in problems
    ]
