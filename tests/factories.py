"""Factories per app, shared by the suite."""

from __future__ import annotations

import factory
from django.contrib.auth.models import User
from factory.django import DjangoModelFactory

from videos.models import Category, Video


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")


class CategoryFactory(DjangoModelFactory[Category]):
    class Meta:
        model = Category
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"cat-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


class VideoFactory(DjangoModelFactory[Video]):
    class Meta:
        model = Video

    title = factory.Sequence(lambda n: f"Video {n}")
    category = factory.SubFactory(CategoryFactory)
    owner = factory.SubFactory(UserFactory)
    duration_seconds = 120
    thumbnail_url = factory.LazyAttribute(lambda o: f"https://img.example.com/{o.title.replace(' ', '-')}.jpg")
    status = Video.Status.PUBLISHED
