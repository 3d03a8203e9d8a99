from django.apps import AppConfig


class ConceptsConfig(AppConfig):
    name = "concepts"
    verbose_name = "Concepts and the lab"

    def ready(self) -> None:
        from concepts import checks  # noqa: F401  (registers the content check)
