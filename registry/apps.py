from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Adapter registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Cache invalidation must be wired in every process that writes (web, workers, commands),
        # not only where the API's URLs happen to be loaded.
        from .api import caching

        caching.connect_signals()
