"""Property-based contract test: the committed OpenAPI schema against the live app.

The schemathesis command runs here as a client team would run it: every phase
(the schema's own examples, coverage of each parameter's boundaries, fuzzing, and
stateful sequences that feed one answer's ids into the next request), every check,
the API key on every request, both valid (positive) and schema-breaking (negative)
input, against the app served by gunicorn as in ``make run`` and backed by the real
Postgres, Valkey and Kafka of the test stack. Generation is deterministic, so a run
is reproducible. Every failure is a bug of the product (or of the schema), never a
check to switch off.

The one thing the schema cannot say is which videos exist and which event types are
configured: tests/api/schemathesis_hooks.py makes a valid generated event name them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from events.models import ApiKey
from rankings.services import snapshot_take
from tests.conftest import wire
from tests.processes import running, wait_for, web
from videos.models import Video

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "docs" / "openapi.yaml"
CONFIG_PATH = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Fuzzed cases per operation; the examples, coverage and stateful phases add their own.
MAX_EXAMPLES = 100
# Bounds a hang, not the run: the whole run takes about 50 s on the 2-core development machine.
RUN_TIMEOUT_S = 270

pytestmark = pytest.mark.django_db(transaction=True)


def _example_video_ids(schema: dict[str, Any]) -> set[int]:
    """Video ids the documented examples name: ``video_id`` in request bodies, ``ids`` in query strings."""
    found: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "video_id" and isinstance(item, int):
                    found.add(item)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for item in schema["paths"].values():
        for operation in item.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                walk([example["value"] for example in media.get("examples", {}).values()])
            for param in operation.get("parameters", []):
                if param["name"] == "ids" and "example" in param["schema"]:
                    found.update(int(v) for v in str(param["schema"]["example"]).split(","))
    return found


class Seed:
    """What the server holds while the contract runs: published and hidden videos, built rankings, a key."""

    def __init__(self, videos: list[Any], hidden: Any, raw_key: str) -> None:
        self.videos = videos
        self.hidden = hidden
        self.raw_key = raw_key
        self.video_ids = [v.id for v in videos]


@pytest.fixture
def seed(make_video: Callable[..., Any], apply_events: Callable[[list[str]], Any]) -> Seed:
    # The videos the examples name exist and are published, as in the demo data. Every id is given, so
    # none can meet the id sequence of the table.
    ids = sorted(_example_video_ids(yaml.safe_load(SCHEMA_PATH.read_text())))
    assert len(ids) >= 2, ids
    videos = [make_video(id=video_id, title=f"Contract video {video_id}", duration_seconds=60 + n)
              for n, video_id in enumerate(ids)]  # fmt: skip
    hidden = make_video(id=ids[-1] + 1, title="Hidden", status=Video.Status.HIDDEN)
    apply_events([wire(v.id, "like") for n, v in enumerate(videos) for _ in range(len(videos) - n)])
    snapshot_take()
    apply_events([wire(videos[-1].id, "share") for _ in range(5)])
    _, raw_key = ApiKey.objects.create_key(name="contract test")
    return Seed(videos, hidden, raw_key)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:  # not listening yet, or still loading the app
        return False


@pytest.fixture
def server(seed: Seed, tmp_path: Path) -> Iterator[str]:
    """The app as ``make run`` serves it (gunicorn, development settings, DEBUG on), started once the
    seed is committed. With DEBUG on Django answers some errors with its own HTML pages; the API must not.

    Not pytest-django's live_server: its server keeps connections alive and sends headers
    and body in separate writes, so every request of a keep-alive client waited ~40 ms for
    a delayed TCP acknowledgement, which made the run four times longer.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    dev = web(
        tmp_path,
        port=port,
        DJANGO_SETTINGS_MODULE="ranking_site.settings.base",
        DEBUG="true",
        # Thousands of ingest requests from one key and one IP; tests/api/test_security.py covers the throttles.
        THROTTLE_INGEST_PER_KEY="100000/min",
        THROTTLE_INGEST_PER_IP="100000/min",
    )
    with running(dev) as (proc,):
        assert wait_for(lambda: _healthy(url), timeout=60, interval=0.2), proc.output()[-3000:]
        yield url


def _cases_sent(report: Path) -> dict[str, Counter[str]]:
    """Distinct cases sent per operation and phase, from the run's NDJSON event stream."""
    sent: dict[str, Counter[str]] = defaultdict(Counter)
    with report.open() as lines:
        for line in lines:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            for case in (finished["recorder"].get("cases") or {}).values():
                value = case["value"]
                label = f"{value['method']} {value['path']}"
                sent[label][finished["phase"]] += 1
    return sent


def test_api_honours_its_schema(seed: Seed, server: str, tmp_path: Path) -> None:
    report = tmp_path / "events.ndjson"
    command = [
        str(SCHEMATHESIS), "--config-file", str(CONFIG_PATH), "run", str(SCHEMA_PATH),
        "--url", server,
        "--phases", "examples,coverage,fuzzing,stateful",
        "--checks", "all",
        "--mode", "all",
        "--header", f"Authorization: Api-Key {seed.raw_key}",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        # One worker: with two, this version cut one operation's fuzzing short (6 cases instead of 100).
        "--workers", "1",
        "--report", "ndjson", "--report-ndjson-path", str(report),
        "--request-timeout", "30",
        "--no-color",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
        "CONTRACT_VIDEO_IDS": ",".join(str(i) for i in seed.video_ids),
    }
    # Its own folder: the command keeps a cache beside where it runs.
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, output[-20000:]

    sent = _cases_sent(report)
    print("\n".join(f"{label}: {dict(phases)}" for label, phases in sorted(sent.items())))
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if operation.get("parameters") or operation.get("requestBody"):
                # An operation without any input has one request to send, however many are asked for.
                label = f"{method.upper()} {path}"
                assert sent[label]["fuzzing"] >= MAX_EXAMPLES, (label, dict(sent[label]))
