"""Signals the catalogue sends; the apps above it (scoring) receive them."""

from django.dispatch import Signal

# Sent inside the transaction of a bulk status change (a queryset update sends no post_save).
# Arguments: changes, a list of (video id, status before, status after, category id).
videos_status_changed = Signal()
