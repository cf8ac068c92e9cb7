from django.urls import URLPattern, URLResolver, path

from rankings.api import RankHistoryApi, RankingAroundApi, RankingListApi, RankingMoversApi, VideoRankingApi
from rankings.subscriptions_api import SubscriptionDetailApi, SubscriptionListApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("rankings/", RankingListApi.as_view(), name="rankings-list"),
    path("rankings/movers/", RankingMoversApi.as_view(), name="rankings-movers"),
    path("rankings/videos/<int:video_id>/", VideoRankingApi.as_view(), name="rankings-video"),
    path("rankings/videos/<int:video_id>/around/", RankingAroundApi.as_view(), name="rankings-around"),
    path("rankings/videos/<int:video_id>/history/", RankHistoryApi.as_view(), name="rankings-history"),
    path("subscriptions/", SubscriptionListApi.as_view(), name="subscriptions"),
    path("subscriptions/<int:subscription_id>/", SubscriptionDetailApi.as_view(), name="subscriptions-detail"),
]
