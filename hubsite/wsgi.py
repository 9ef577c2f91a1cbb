import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings.dev")
application = get_wsgi_application()


def freeze_startup_objects() -> None:
    """Move everything loaded so far (modules, settings, URL patterns, templates' parsers) out of the
    garbage collector's sight: they live as long as the process, and a full collection that no
    longer walks them pauses a request for far less (the tail of page latencies)."""
    gc.collect()
    gc.freeze()


freeze_startup_objects()
