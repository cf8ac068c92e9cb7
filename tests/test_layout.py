"""The layout rules import-linter cannot see: the projection holds no ORM or SQL, and raw SQL
names only its own app's tables (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("videos", "events", "scoring", "rankings", "web", "demo", "core", "leaderboard")
TABLE = re.compile(r"\b(videos|events|scoring|rankings|auth)_[a-z]+\b")
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|TRUNCATE|COPY|ANALYZE)\b")


def _sources(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]


def test_the_projection_imports_no_orm_and_no_database_driver() -> None:
    offenders = []
    for path in _sources("leaderboard"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(("django.db", "psycopg2"))]
    assert not offenders


def test_raw_sql_names_only_its_own_apps_tables() -> None:
    offenders = []
    for app in APPS:
        for path in _sources(app):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                    foreign = {m.group(0) for m in TABLE.finditer(node.value) if m.group(1) != app}
                    offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {t}" for t in sorted(foreign)]
    assert not offenders, offenders
