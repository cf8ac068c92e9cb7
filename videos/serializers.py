"""Input and output serializers of the catalogue API."""

from __future__ import annotations

from rest_framework import serializers

from videos.models import Category, Video

# --- catalogue ---------------------------------------------------------------


class VideoListInputSerializer(serializers.Serializer):
    category = serializers.SlugField(
        required=False, max_length=64, help_text="Only videos of this category (slug). Unknown slug: 404."
    )


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
