from django.urls import URLPattern, URLResolver, path

from rankings.activity_api import SparklinesApi, VideoActivityApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("videos/<int:video_id>/activity/", VideoActivityApi.as_view(), name="videos-activity"),
    path("rankings/sparklines/", SparklinesApi.as_view(), name="rankings-sparklines"),
]
