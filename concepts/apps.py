from django.apps import AppConfig


class ConceptsConfig(AppConfig):
    name = "concepts"
    verbose_name = "Concept pages"

    def ready(self) -> None:
        from concepts import checks  # noqa: F401  (registers the content check)
