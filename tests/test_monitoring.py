"""The Grafana dashboard in the repository asks only for metrics the app exports, and shows
all of them; Prometheus and Grafana are provisioned to find the app and the dashboard.

The exported names come from /metrics after a real run: events posted through the API
(Kafka), a batch counted and applied by the worker task (Postgres, Redis), a batch task
that gives up, the bridge's lag report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from events.ingest import api_key_create
from scoring.ledger import batch_store
from scoring.tasks import batch_process
from tests.conftest import wire

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
# PromQL words that are neither metrics nor followed by "(" (functions and aggregations are).
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                   "unless", "inf", "nan"}  # fmt: skip


def dashboards() -> dict[str, dict[str, Any]]:
    found = {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}
    assert "ranking.json" in found
    return found


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def queries() -> list[str]:
    return [target["expr"] for d in dashboards().values() for p in panels(d) for target in p.get("targets", [])]


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (enough PromQL for dashboards: no @ modifiers)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word, rest = match.group(0), expr[match.end() :].lstrip()
        if not rest.startswith("(") and word.lower() not in PROMQL_KEYWORDS:
            names.add(word)
    return names


def test_promql_metric_names() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, endpoint) (rate(a_bucket{x="y(z)"}[5m]))) / on (le) b_total > 1e3'
    assert promql_metric_names(expr) == {"a_bucket", "b_total"}
    assert promql_metric_names("sum without (partition) (ranking_bridge_lag_messages) or vector(0)") == {
        "ranking_bridge_lag_messages"
    }


def test_dashboard_panels_are_well_formed() -> None:
    datasource = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (uid,) = [source["uid"] for source in datasource["datasources"]]
    for name, dashboard in dashboards().items():
        assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36, name
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        for panel in panels(dashboard):
            assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], f"{panel['title']} has no query"
            for target in panel["targets"]:
                assert target["expr"].strip() and target["datasource"]["uid"] == uid, panel["title"]
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.fixture
def real_run(client: Client, make_video: Callable[..., Any], rankings_ready: None, counters_fail: Any) -> str:
    """A short real run with every figure recorded; returns the /metrics text it renders."""
    metrics.metrics_recording_resume()
    metrics.metrics_reset()
    metrics.gauge_sources_cache_clear()
    video, failing = make_video(), make_video()
    key = api_key_create(name="monitoring")[1]
    auth = {"Authorization": f"Api-Key {key}"}
    for body in ({"video_id": video.id, "type": "like"}, {"video_id": video.id, "type": "teleport"}):
        client.post("/api/v1/events/", json.dumps(body), content_type="application/json", headers=auth)
    client.get("/api/v1/rankings/?window=day")

    now = timezone.now().isoformat()
    accepted = [json.dumps({**json.loads(wire(video.id)), "accepted_at": now}) for _ in range(2)]
    raws = [*accepted, accepted[0], "not json"]  # counted, duplicate, dead letter
    batch_process(str(batch_store(topic="t", messages=[[0, n, r] for n, r in enumerate(raws)]).id))
    counters_fail(video_id=failing.id, sqlstate="22P02")
    assert batch_process.apply(args=[str(batch_store(topic="t", messages=[[0, 0, wire(failing.id)]]).id)]).failed()
    metrics.bridge_lag_record(lag={0: 3, 1: 0})  # what the bridge reports (tests/events/test_bridge.py)

    response = client.get("/metrics")
    assert response.status_code == 200
    return str(response.content.decode())


def test_every_dashboard_query_names_a_metric_the_app_exports(real_run: str) -> None:
    exported = {sample.name for family in text_string_to_metric_families(real_run) for sample in family.samples}
    for expr in queries():
        names = promql_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} asks for {sorted(names - exported)}, which /metrics does not export"


def test_every_exported_metric_is_on_the_dashboard(real_run: str) -> None:
    shown = set().union(*(promql_metric_names(expr) for expr in queries()))
    for family in text_string_to_metric_families(real_run):
        assert any(name == family.name or name.startswith(family.name + "_") for name in shown), (
            f"{family.name} is exported but on no dashboard panel"
        )


def test_grafana_loads_the_dashboards_from_where_compose_mounts_them() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    provisioning = MONITORING / "grafana" / "provisioning"
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "ranking.yml").read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == [mounts["./monitoring/grafana/dashboards"]]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]


def test_prometheus_scrapes_the_web_service_with_the_metrics_token() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (target,) = [t for group in job["static_configs"] for t in group["targets"]]
    host, port = target.split(":")
    assert host == "web" and f"0.0.0.0:{port}" in services["web"]["command"]
    prometheus = services["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"] if volume.startswith("./"))
    assert mounts["./monitoring/prometheus/prometheus.yml"] in " ".join(prometheus["command"])
    token_file = job["authorization"]["credentials_file"]
    (config_ref,) = [c for c in prometheus["configs"] if c["target"] == token_file]
    app_token = compose["x-app-env"]["METRICS_TOKEN"]
    assert compose["configs"][config_ref["source"]]["content"] == app_token, "Prometheus sends the app's token"
