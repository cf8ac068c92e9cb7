"""Benchmark of the whole pipeline against the embedded real servers (``make bench``).

Starts its own PostgreSQL, Valkey and Tansu (scripts/devstack.py, folder
``.devdata/bench``), a fresh ``bench`` database, and the production process
shape: gunicorn, ``manage.py kafka_bridge`` and a Celery worker as separate
processes. Then, in one run:

1. ingest: events/s from HTTP POST (batches of 500, several client processes)
   until every event is counted and applied to the sorted sets; CPU per component;
2. freshness: POST accepted -> score changed in ``GET /rankings/videos/<id>/``
   under a steady 5,000 events/s background load (open loop);
3. reads: ``/rankings/?window=day&limit=20`` and ``/rankings/videos/<id>/``, with
   wrk for the closed-loop maximum, then paced at 1,000 req/s for the latency (open
   loop: each request timed from its scheduled send time, see scripts/httpclient.py);
4. rebuild: ``manage.py reindex`` time and Valkey memory per ranked video;
5. side by side: the naive Postgres design (a row per event, GROUP BY at read
   time) and the ``leaderboard`` library (one ZINCRBY per event).

Every figure is the median of several runs (3; ``--quick``: 2 on a smaller data
set). The goals of SPEC §12 are printed beside the measured values with a
verdict, then the CPU per component per 1,000 events. Results go to stdout,
``docs/benchmarks.md`` (this mode's section only; the hand-written parts stay)
and ``docs/benchmarks.png``.

    python scripts/bench            # 1,000,000 videos, about 25 minutes
    python scripts/bench --quick    # 100,000 videos, 2-10 minutes (machine load)
    python scripts/bench --scope    # one ranking scope's capacity only (scope.py)

One module per stage; ``cli`` runs them in order. The package imports its
sibling scripts (devstack, httpclient) with scripts/ on sys.path, as they
import one another; the project's own modules only inside functions, and only
in ``cli``, ``reindex`` and ``ours`` (our code called in-process).
"""
