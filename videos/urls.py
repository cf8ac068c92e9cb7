from django.urls import URLPattern, URLResolver, path

from videos.api import CategoryListApi, VideoDetailApi, VideoListApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("videos/", VideoListApi.as_view(), name="videos-list"),
    path("videos/<int:video_id>/", VideoDetailApi.as_view(), name="videos-detail"),
    path("categories/", CategoryListApi.as_view(), name="categories-list"),
]
