"""Signals scoring sends; receivers live in the apps above it (or in scoring's own tasks)."""

from django.dispatch import Signal

# Redis has no built rankings: a rebuild must run (connected to queueing the rebuild task).
rebuild_needed = Signal()
# A rebuild swapped fresh rankings in; caches kept beside them (snapshots) may restore themselves.
rankings_rebuilt = Signal()
