from django.urls import URLPattern, URLResolver, path

from web import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.ranking_page, name="web-ranking"),
    path("videos/<int:video_id>/", views.video_page, name="web-video"),
]
