"""The OpenAPI schema: generated without warnings, valid, committed, and served
with the documentation UIs from local assets (no CDN)."""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils.dateparse import parse_datetime

from events.ingest import api_key_create

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi.yaml"
REGENERATE = ".venv/bin/python manage.py spectacular --file docs/openapi.yaml"
ERROR_CODES = {"400", "401", "403", "404", "413", "429", "503"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(schema text, generator output), from the command a developer runs, in a fresh interpreter:
    drf-spectacular reports each warning once per process, so in-process runs could miss some."""
    out = tmp_path_factory.mktemp("schema") / "openapi.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--file", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"schema generation or validation failed:\n{result.stderr}"
    return out.read_text(), result.stderr


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


# Warnings reported to the owner of the view with the fix; each entry must go when the warning
# does (the test fails on an entry that no longer matches, so the list cannot go stale).
KNOWN_WARNINGS: dict[str, str] = {}


def test_schema_generates_without_warnings(generated: tuple[str, str]) -> None:
    _, output = generated
    problems = [
        line
        for line in output.splitlines()
        if re.search(r"\b(Warning|Error)\b", line) and not line.startswith(("Warnings:", "Errors:"))
    ]
    unexpected = [line for line in problems if not any(known in line for known in KNOWN_WARNINGS)]
    assert not unexpected, "drf-spectacular warnings (run manage.py spectacular --fail-on-warn):\n" + "\n".join(
        unexpected
    )
    gone = [where for known, where in KNOWN_WARNINGS.items() if not any(known in line for line in problems)]
    assert not gone, f"fixed, so remove from KNOWN_WARNINGS: {gone}"


def test_committed_schema_is_current(generated: tuple[str, str]) -> None:
    text, _ = generated
    committed = COMMITTED.read_text() if COMMITTED.exists() else ""
    if text != committed:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    "docs/openapi.yaml (committed)",
                    "generated from the code",
                )
            )[:120]
        )
        pytest.fail(
            f"docs/openapi.yaml is stale: the API changed but the committed schema did not.\n"
            f"Regenerate it with:\n\n    {REGENERATE}\n\nand commit it. First lines of the difference:\n{diff}",
            pytrace=False,
        )


def test_every_operation_is_documented(generated: tuple[str, str]) -> None:
    schema = yaml.safe_load(generated[0])
    operations = list(_operations(schema))
    assert {path for path, _, _ in operations} >= {
        "/api/v1/events/",
        "/api/v1/rankings/",
        "/api/v1/rankings/movers/",
        "/api/v1/rankings/videos/{video_id}/",
        "/api/v1/rankings/videos/{video_id}/around/",
        "/api/v1/rankings/videos/{video_id}/history/",
        "/api/v1/videos/",
        "/api/v1/videos/{video_id}/",
        "/api/v1/categories/",
        "/api/v1/event-types/",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary") and operation.get("description"), where
        assert operation.get("tags"), where
        for name in re.findall(r"{(\w+)}", path):
            assert any(p["name"] == name and p["in"] == "path" for p in operation.get("parameters", [])), where
        for code, response in operation["responses"].items():
            assert response.get("description") or code == "200", f"{where} {code} has no description"
            if code in ERROR_CODES:
                content = response["content"]["application/json"]
                ref = content["schema"]["$ref"]
                assert ref.endswith(("/ErrorOutput", "/IngestErrorOutput", "/ReadinessOutput")), (where, code)
                assert content.get("examples"), f"{where} {code} has no example"


def test_ingest_documents_every_refusal_with_examples(generated: tuple[str, str]) -> None:
    schema = yaml.safe_load(generated[0])
    operation = schema["paths"]["/api/v1/events/"]["post"]
    assert set(operation["responses"]) >= {"202", "400", "401", "403", "413", "429", "503"}
    assert operation["responses"]["429"]["headers"]["Retry-After"]
    assert {"ApiKeyAuth", "ApiKeyHeader"} <= {name for req in operation["security"] for name in req}
    assert set(operation["requestBody"]["content"]["application/json"]["examples"]) >= {"SingleEvent", "Batch"}


def test_error_shape_is_one_schema(generated: tuple[str, str]) -> None:
    schema = yaml.safe_load(generated[0])
    components = schema["components"]["schemas"]
    assert set(components["ErrorBody"]["required"]) == {"code", "message", "details"}
    assert [name for name in components if "Error" in name] == ["ErrorBody", "ErrorOutput"]
    refs = {
        (path, status): response["content"]["application/json"]["schema"]["$ref"]
        for path, item in schema["paths"].items()
        if path != "/readyz"  # its 503 is the readiness report, with every check's state
        for operation in item.values()
        for status, response in operation["responses"].items()
        if status.startswith(("4", "5")) and "application/json" in response.get("content", {})
    }
    assert refs and set(refs.values()) == {"#/components/schemas/ErrorOutput"}, refs


def test_schema_endpoint_serves_the_committed_schema(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi")
    assert response.status_code == 200
    assert yaml.safe_load(response.content) == yaml.safe_load(COMMITTED.read_text())


# --- documented request examples ----------------------------------------------------------


def _request_examples(schema: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """(path, method, example name, body) of every request-body example of the schema."""
    return [
        (path, method, name, example["value"])
        for path, method, operation in _operations(schema)
        for media in operation.get("requestBody", {}).get("content", {}).values()
        for name, example in media.get("examples", {}).items()
    ]


def _values(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair nested anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _values(item)


def test_request_examples_hold_no_absolute_time() -> None:
    # A fixed timestamp is accepted for 7 days and refused ever after; the examples must keep working.
    examples = _request_examples(yaml.safe_load(COMMITTED.read_text()))
    assert examples
    dated = [
        (path, name, key)
        for path, _, name, body in examples
        for key, value in _values(body)
        if isinstance(value, str) and parse_datetime(value) is not None
    ]
    assert not dated, dated


def test_every_documented_request_example_is_accepted(client: Client, make_video: Callable[..., Any]) -> None:
    examples = _request_examples(yaml.safe_load(COMMITTED.read_text()))
    assert {name for path, _, name, _ in examples if path == "/api/v1/events/"} >= {"SingleEvent", "Batch"}
    # The examples name videos by id; here those videos exist and are published, as in the demo data.
    for video_id in sorted({v for _, _, _, body in examples for key, v in _values(body) if key == "video_id"}):
        make_video(id=video_id)
    _, raw_key = api_key_create(name="examples")
    for path, method, name, body in examples:
        for attempt in ("first", "again"):  # resending an example (same event ids) is accepted too
            response = getattr(client, method)(
                path, data=json.dumps(body), content_type="application/json", HTTP_X_API_KEY=raw_key
            )
            assert 200 <= response.status_code < 300, (method.upper(), path, name, attempt, response.content)


# --- documentation UIs -------------------------------------------------------------------

SIDECAR_ASSET = re.compile(r"""(?:src|href)=["'](/static/drf_spectacular_sidecar/[^"']+)["']""")


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Static files collected as the image build does, so they are served the production way."""
    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", "--noinput", verbosity=0)
    yield root


@pytest.mark.parametrize(
    ("url", "assets"),
    [
        ("/api/docs/", {"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"}),
        ("/api/redoc/", {"redoc.standalone.js"}),
    ],
)
def test_documentation_ui_loads_only_local_assets(collected_static: Path, url: str, assets: set[str]) -> None:
    with override_settings(STATIC_ROOT=collected_static):
        client = Client()  # a new client builds its middleware, so WhiteNoise sees this STATIC_ROOT
        page = client.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
        found = SIDECAR_ASSET.findall(html)
        assert {name.rsplit("/", 1)[-1] for name in found} >= assets, found
        for asset in found:
            response = client.get(asset)
            assert response.status_code == 200, asset
            assert b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
