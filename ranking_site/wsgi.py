import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ranking_site.settings.base")

application = get_wsgi_application()

# Everything a web worker keeps is loaded now (core.heap); URL patterns and views load on the first
# request, which the collector still scans until they are promoted.
from core.heap import heap_settle  # noqa: E402  # after Django is set up, like the application

heap_settle()
