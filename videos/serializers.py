"""Input and output serializers of the catalogue API."""

from __future__ import annotations

from rest_framework import serializers

from videos.models import Category, Video

# --- catalogue ---------------------------------------------------------------


def category_slug_field(*, help_text: str) -> serializers.SlugField:
    """The optional ``category`` query parameter of every endpoint that filters by category.

    Nothing is stripped: Python's str.strip() also removes control characters such
    as \x1f, so a "slug" made of them would become "" and be refused as blank, when
    the fault is that it is not a slug. Refused values get the slug message.
    """
    return serializers.SlugField(
        required=False,
        max_length=Category._meta.get_field("slug").max_length,
        trim_whitespace=False,
        help_text=help_text,
    )


class VideoListInputSerializer(serializers.Serializer):
    category = category_slug_field(help_text="Only videos of this category (slug). Unknown slug: 404.")


class VideoOutputSerializer(serializers.ModelSerializer):
    # Same flat shape as the video inside a ranking entry, so clients share one model.
    category: serializers.SlugRelatedField[Category] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, help_text="Category slug."
    )
    category_name = serializers.CharField(source="category.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, help_text="Owner's username.")

    class Meta:
        model = Video
        fields = [
            "id",
            "title",
            "description",
            "category",
            "category_name",
            "owner",
            "thumbnail_url",
            "duration_seconds",
            "published_at",
        ]
        read_only_fields = fields


class CategoryOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "slug", "name", "description"]
        read_only_fields = fields
