import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ranking_site.settings.base")

app = Celery("ranking_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_postrun.connect
def _db_connections_retire(task: Any = None, **kwargs: Any) -> None:
    """After each task, drop a database connection that failed or outlived CONN_MAX_AGE.

    Django does this around every request. Celery's Django fixup only closes connections
    every CELERY_DB_REUSE_MAX tasks, so a connection the server dropped (a Postgres restart
    or failover) stayed in the worker and failed every later task, retries included.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return  # run inline by the caller, inside the caller's transaction (tests, replays)
    from django.db import close_old_connections

    close_old_connections()


@worker_process_init.connect
def _heap_settle(**kwargs: Any) -> None:
    """Each pool process, once forked and set up (core.heap)."""
    from core.heap import heap_settle

    heap_settle()
