"""Public read routes of the events app (the ingestion route lives in events.urls)."""

from django.urls import URLPattern, URLResolver, path

from events.read_api import EventTypeListApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("event-types/", EventTypeListApi.as_view(), name="event-types-list"),
]
