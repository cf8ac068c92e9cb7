from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.metrics import gauge_source_register
        from scoring import receivers  # noqa: F401  (catalogue changes reach the projection)
        from scoring.selectors import batches_pending_gauge, dead_letters_gauge

        gauge_source_register(dead_letters_gauge)
        gauge_source_register(batches_pending_gauge)
