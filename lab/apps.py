from django.apps import AppConfig


class LabConfig(AppConfig):
    name = "lab"
    verbose_name = "The lab: event store, projector and read models"

    def ready(self) -> None:
        from lab import signals  # noqa: F401  (connects the receivers; Django's documented place for it)
        from lab.scenarios import checks  # noqa: F401  (registers the scenario files' check)
