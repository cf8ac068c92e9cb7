"""The long-lived part of a process's heap, kept out of the cyclic garbage collector's scans.

A worker process holds a few hundred thousand objects that live as long as it does (Django,
the app's modules, settings, URL patterns). Every full collection walked all of them: in the
batch worker a fifth of the CPU of counting a batch went to ``gc`` (py-spy ``--native``). Once
a process has loaded everything it keeps, ``heap_settle`` moves those objects to the permanent
generation; the collector then only looks at what the requests and batches allocate.
"""

from __future__ import annotations

import gc


def heap_settle() -> None:
    """Call once per process, after start-up and after any fork, before the work begins."""
    gc.collect()
    gc.freeze()
