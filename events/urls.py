from django.urls import URLPattern, URLResolver, path

from events.api import EventIngestApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("events/", EventIngestApi.as_view(), name="events-ingest"),
]
