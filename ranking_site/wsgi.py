import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ranking_site.settings.base")

application = get_wsgi_application()

# Load now what a worker would otherwise load on its first requests: the URL patterns with every
# view module behind them (the API, its schema generator) and the cache client. Loaded later, they
# stayed in the collector's oldest generation, and each full collection walked them: 20-100 ms
# pauses of a worker under the benchmark's paced reads (docs/benchmarks.md).
from django.core.cache import caches  # noqa: E402
from django.urls import get_resolver  # noqa: E402

get_resolver().url_patterns  # noqa: B018  # the property imports the URL conf
caches["default"]

# Everything a web worker keeps is loaded now (core.heap).
from core.heap import heap_settle  # noqa: E402  # after Django is set up, like the application

heap_settle()
