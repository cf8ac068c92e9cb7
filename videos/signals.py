"""Signals the catalogue sends; the apps above it (scoring) receive them."""

from django.dispatch import Signal

# Sent inside the transaction of a bulk status change (a queryset update sends no post_save).
# Arguments: video_ids.
videos_status_changed = Signal()
