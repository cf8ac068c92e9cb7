"""Signals scoring sends; receivers live in the apps above it (or in scoring's own tasks)."""

from django.dispatch import Signal

# Some scopes have no built rankings: they must be rebuilt (queues the task that rebuilds the missing ones).
rebuild_needed = Signal()
# A rebuild swapped fresh rankings in; caches kept beside them (snapshots) may restore themselves.
rankings_rebuilt = Signal()
