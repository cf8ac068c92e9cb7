"""Bulk writes for big loads: COPY, array parameters, ids taken ahead from a sequence, truncation,
statistics.

Core knows no app, so every function takes the table from its caller (the app that owns
it passes ``Model._meta.db_table``): raw SQL still names only the caller's own tables.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from django.db import connection

# Lines per COPY statement: large enough that the per-statement cost vanishes, small
# enough that one chunk of text stays a few tens of megabytes.
COPY_CHUNK = 200_000


def copy_text(value: str) -> str:
    """Text in COPY's text format: backslash, tab and line breaks escaped."""
    # str() first: a TextChoices member (a str subclass) must print its value.
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_field(value: object) -> str:
    """Any field in COPY's text format (NULL, booleans, timestamps, text). A caller that knows its
    column types formats faster with f-strings and ``copy_text`` alone."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return copy_text(str(value))


def copy_line(row: Iterable[object]) -> str:
    """One row in COPY's text format, newline included."""
    return "\t".join(copy_field(v) for v in row) + "\n"


def table_copy(
    *,
    table: str,
    columns: Sequence[str],
    lines: Iterable[str],
    chunk: int = COPY_CHUNK,
    loaded: Callable[[int], None] | None = None,
) -> int:
    """COPY text-format ``lines`` (see ``copy_line``) into ``table``, ``chunk`` lines per statement.

    ``loaded`` hears the number of lines written so far after each statement. Returns that number.
    """
    sql = f"COPY {connection.ops.quote_name(table)} ({', '.join(columns)}) FROM STDIN"
    done = 0
    pending = iter(lines)
    # islice takes a chunk at C speed: no Python step per line between the producer and COPY.
    while chunk_lines := list(itertools.islice(pending, chunk)):
        with connection.cursor() as cur:
            cur.cursor.copy_expert(sql, io.StringIO("".join(chunk_lines)))
        done += len(chunk_lines)
        if loaded is not None:
            loaded(done)
    return done


def array_param(values: Iterable[object]) -> str:
    """An array parameter as one array literal (``'{1,2,3}'``), for ``%s::<type>[]``.

    psycopg2 sends a Python list as ``ARRAY[...]``, one expression per element, each adapted by
    the driver and then parsed and planned by the server; a batch's arrays of thousands of
    elements made that a tenth of the worker's and the server's time. The elements must need no
    quoting: numbers, uuids and ISO-8601 timestamps (``datetime.isoformat``) qualify; text does not.
    """
    return "{" + ",".join(map(str, values)) + "}"


def ids_reserve(*, table: str, count: int) -> list[int]:
    """Take ``count`` ids from the sequence of ``table``'s ``id`` column, ascending, so rows can be
    COPYed with ids known in advance (nobody else can be handed the same ones)."""
    if count <= 0:
        return []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [connection.ops.quote_name(table), count],
        )
        return sorted(int(r[0]) for r in cur.fetchall())


def tables_truncate(*, tables: Sequence[str], cascade: bool = False) -> None:
    """Empty ``tables`` and restart their id sequences (``cascade``: with the tables that reference them)."""
    if not tables:
        return
    names = ", ".join(connection.ops.quote_name(t) for t in tables)
    with connection.cursor() as cur:
        # Deferred foreign-key checks still pending in an enclosing transaction would block TRUNCATE.
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute(f"TRUNCATE {names} RESTART IDENTITY{' CASCADE' if cascade else ''}")


def tables_analyze(*, tables: Sequence[str]) -> None:
    """Fresh planner statistics after a bulk load: without them a query over the new rows
    can pick a plan many times slower."""
    if not tables:
        return
    with connection.cursor() as cur:
        cur.execute(f"ANALYZE {', '.join(connection.ops.quote_name(t) for t in tables)}")
