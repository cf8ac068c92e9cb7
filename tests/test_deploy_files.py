"""The production shape (docker-compose.yml, Dockerfile) matches what the settings read,
and the lock files it and .venv/ install from pin every package with hashes.

These tests only read files: no Docker, no servers, no database.
"""

from __future__ import annotations

import ast
import itertools
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILES = [ROOT / "ranking_site" / "settings" / "base.py", ROOT / "ranking_site" / "settings" / "production.py"]

INFRA_SERVICES = {"postgres", "redis", "kafka"}
APP_SERVICES = {"migrate", "web", "bridge", "worker", "worker-maintenance", "worker-webhooks", "beat"}
SCALABLE_SERVICES = {"bridge", "worker", "worker-maintenance", "worker-webhooks"}
# docker compose --profile monitoring up: Prometheus and Grafana besides the rest.
MONITORING_SERVICES = {"prometheus", "grafana"}
ENV_HELPERS = {"env_str", "env_int", "env_bool", "env_float", "env_list", "env_db"}
# Defaults that only make sense on a developer's machine.
LOCAL_ONLY_DEFAULT = re.compile(r"127\.0\.0\.1|localhost|dev-only")
# Always required in the containers, whatever the defaults in the settings say.
MUST_BE_SET = {
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
}
# Read by Django/Celery themselves rather than by the settings modules.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _interpolate(value: object) -> str:
    """Resolve compose's ${NAME:-default} / ${NAME-default} / ${NAME} the way an empty shell would."""
    return re.sub(r"\$\{(\w+)(?::?[-?]([^}]*))?\}", lambda m: m.group(2) or "", str(value))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): _interpolate(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    parts = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    return [_interpolate(part) for part in parts]


def _settings_env_reads() -> dict[str, str | None]:
    """Every variable the settings read: name -> source of its default (None: no default)."""
    reads: dict[str, str | None] = {}
    for path in SETTINGS_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            by_helper = isinstance(func, ast.Name) and func.id in ENV_HELPERS
            by_environ = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env"
            first = node.args[0]
            if not (by_helper or by_environ) or not isinstance(first, ast.Constant) or not isinstance(first.value, str):
                continue
            default = node.args[1] if len(node.args) > 1 else None
            for kw in node.keywords:
                if kw.arg == "default":
                    default = kw.value
            # production.py runs last, so its reading of a name is the one that counts.
            reads[first.value] = None if default is None else ast.unparse(default)
    return reads


def _needs_value_in_production(default: str | None) -> bool:
    if default is None or LOCAL_ONLY_DEFAULT.search(default):
        return True
    try:
        value = ast.literal_eval(default)
    except ValueError:  # an expression such as 6 * 3600
        return False
    return isinstance(value, str | list | tuple | dict) and not value  # "", [] and friends


def test_settings_reads_are_found() -> None:
    reads = _settings_env_reads()
    assert set(reads) >= MUST_BE_SET, f"settings no longer read {MUST_BE_SET - set(reads)}; update this test"
    required = {name for name, default in reads.items() if _needs_value_in_production(default)}
    assert required >= MUST_BE_SET


def test_every_service_exists() -> None:
    services = _services()
    missing = (INFRA_SERVICES | APP_SERVICES) - set(services)
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_infrastructure_images() -> None:
    services = _services()
    assert services["postgres"]["image"].startswith("postgres:18")
    assert services["redis"]["image"].split(":")[0] in {"valkey/valkey", "redis"}
    assert services["kafka"]["image"].startswith("apache/kafka:3.9")


def test_app_services_share_one_image_and_production_settings() -> None:
    services = _services()
    images = {repr((services[name].get("image"), services[name].get("build"))) for name in APP_SERVICES}
    assert len(images) == 1, f"app services differ in image/build: {images}"
    assert services["web"].get("build"), "the app image is built from the Dockerfile"
    for name in APP_SERVICES:
        assert _environment(services[name]).get("DJANGO_SETTINGS_MODULE") == "ranking_site.settings.production", name


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_app_services_set_every_variable_production_needs(service: str) -> None:
    env = _environment(_services()[service])
    required = {name for name, default in _settings_env_reads().items() if _needs_value_in_production(default)}
    missing = sorted(name for name in required | MUST_BE_SET if not env.get(name))
    assert not missing, f"{service} does not set {missing}"


def test_app_environment_names_are_ones_the_settings_read() -> None:
    known = set(_settings_env_reads()) | NOT_SETTINGS
    for name in APP_SERVICES:
        unknown = sorted(set(_environment(_services()[name])) - known)
        assert not unknown, f"{name} sets variables no setting reads (typo?): {unknown}"


def test_app_environment_is_a_valid_production_configuration() -> None:
    env = _environment(_services()["web"])
    assert env.get("DEBUG", "false").lower() in {"0", "false", "no", "off"}
    secret = env["SECRET_KEY"]
    assert len(secret) >= 50 and not secret.startswith(("dev-only", "django-insecure-"))
    assert "localhost" in env["ALLOWED_HOSTS"].split(","), "health checks call the app as localhost"


def test_urls_point_at_compose_services() -> None:
    services = _services()
    env = _environment(services["web"])
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        host = urlsplit(env[name]).hostname
        assert host in services, f"{name} points at {host!r}, which is no compose service"
    for server in env["KAFKA_BOOTSTRAP_SERVERS"].split(","):
        host, _, port = server.strip().rpartition(":")
        assert host in services, f"KAFKA_BOOTSTRAP_SERVERS names {host!r}, which is no compose service"
        advertised = _environment(services[host]).get("KAFKA_ADVERTISED_LISTENERS", "")
        assert f"//{host}:{port}" in advertised, f"Kafka does not advertise {host}:{port}: {advertised!r}"


def test_database_url_matches_postgres_credentials() -> None:
    services = _services()
    url = urlsplit(_environment(services["web"])["DATABASE_URL"])
    pg = _environment(services[url.hostname or ""])
    assert url.scheme in {"postgres", "postgresql"}
    assert url.username == pg["POSTGRES_USER"]
    assert url.password == pg["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == pg["POSTGRES_DB"]


def test_topic_is_created_with_the_apps_name_and_partitions() -> None:
    services = _services()
    env = _environment(services["web"])
    init = " ".join(_command(services["kafka-init"]))
    assert "kafka-topics.sh" in init and "--create" in init
    assert f"--topic {env['KAFKA_TOPIC']}" in init
    assert f"--partitions {env['KAFKA_TOPIC_PARTITIONS']}" in init
    assert _environment(services["kafka"]).get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false"


def test_kafka_runs_in_kraft_mode() -> None:
    env = _environment(_services()["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "CONTROLLER://" in env["KAFKA_LISTENERS"]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("web", ["gunicorn", "ranking_site.wsgi:application"]),
        ("bridge", ["manage.py", "kafka_bridge"]),
        ("worker", ["celery", "-A", "ranking_site", "worker"]),
        ("worker-maintenance", ["celery", "-A", "ranking_site", "worker"]),
        ("worker-webhooks", ["celery", "-A", "ranking_site", "worker"]),
        ("beat", ["celery", "-A", "ranking_site", "beat"]),
        ("migrate", ["manage.py", "migrate", "--noinput"]),
    ],
)
def test_each_process_runs_the_right_command(service: str, expected: list[str]) -> None:
    command = _command(_services()[service])
    it = iter(command)
    assert all(part in it for part in expected), f"{service} runs {command}, expected {expected} in order"


def test_web_binds_the_exposed_port() -> None:
    web = _services()["web"]
    assert "0.0.0.0:8000" in _command(web)
    assert any(str(p).endswith(":8000") for p in web.get("ports", []))


def test_health_checks() -> None:
    services = _services()
    for name in ("postgres", "redis", "kafka", "web"):
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def test_start_order() -> None:
    services = _services()
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"].get("restart") == "no"
    for name in APP_SERVICES - {"migrate"}:
        deps = services[name]["depends_on"]
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        for infra in INFRA_SERVICES:
            assert deps[infra]["condition"] == "service_healthy", f"{name} must wait for a healthy {infra}"


@pytest.mark.parametrize("service", sorted(SCALABLE_SERVICES))
def test_bridge_and_worker_scale(service: str) -> None:
    spec = _services()[service]
    assert "container_name" not in spec, f"{service} has a container_name, so --scale fails"
    assert not spec.get("ports"), f"{service} publishes host ports, so --scale fails"


def _task_queues() -> set[str]:
    from django.conf import settings

    return {settings.CELERY_TASK_DEFAULT_QUEUE} | {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}


def _queues_consumed(command: list[str]) -> set[str]:
    """The -Q/--queues of a celery worker command line; Celery's default queue when absent."""
    for flag, value in itertools.pairwise(command):
        if flag in ("-Q", "--queues"):
            return set(value.split(","))
    return {"celery"}


def test_batches_maintenance_and_webhooks_have_their_own_queues() -> None:
    assert _task_queues() == {"batches", "maintenance", "webhooks"}


def test_compose_runs_one_worker_service_per_queue() -> None:
    """So that `--scale` sizes each on its own, and a rebuild never occupies a batch worker."""
    services = _services()
    assert _queues_consumed(_command(services["worker"])) == {"batches"}
    assert _queues_consumed(_command(services["worker-maintenance"])) == {"maintenance"}
    assert _queues_consumed(_command(services["worker-webhooks"])) == {"webhooks"}
    consumed = set().union(
        *(_queues_consumed(_command(spec)) for spec in services.values() if "worker" in _command(spec))
    )
    assert consumed == _task_queues()


def _procfile() -> dict[str, list[str]]:
    lines = (line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip() and line[0] != "#")
    return {name.strip(): shlex.split(command) for name, command in (line.split(":", 1) for line in lines)}


def test_make_run_consumes_every_queue_with_its_own_worker() -> None:
    workers = {name: cmd for name, cmd in _procfile().items() if cmd[:4] == ["celery", "-A", "ranking_site", "worker"]}
    consumed = [_queues_consumed(cmd) for cmd in workers.values()]
    assert sorted(map(sorted, consumed)) == [["batches"], ["maintenance"], ["webhooks"]]
    names = [cmd[cmd.index("-n") + 1].split("@")[0] for cmd in workers.values()]
    assert len(set(names)) == len(names), "two workers on one host need distinct node names"


def test_test_workers_consume_every_queue() -> None:
    from tests import processes

    assert set(processes.QUEUES.split(",")) == _task_queues()


def test_postgres_data_is_a_named_volume() -> None:
    compose = _compose()
    volumes = compose["services"]["postgres"].get("volumes", [])
    named = [str(v).split(":")[0] for v in volumes if not str(v).startswith((".", "/"))]
    assert named and set(named) <= set(compose.get("volumes") or {})
    # PostgreSQL 18 images keep PGDATA under /var/lib/postgresql/18/...
    assert any(str(v).split(":")[1].rstrip("/") == "/var/lib/postgresql" for v in volumes)


def test_valkey_nodes_keep_no_copy_of_the_rankings() -> None:
    # A node restarted from an older snapshot or append-only file would hold its scopes as built
    # while missing the batches applied after that copy: lost counts (docs/exactly-once.md).
    services = _compose()["services"]
    nodes = [name for name, svc in services.items() if svc.get("command", [None])[0] == "valkey-server"]
    assert {"redis", "valkey-1", "valkey-2", "valkey-3"} <= set(nodes)
    for name in nodes:
        command = services[name]["command"]
        assert command[command.index("--save") + 1] == "", name
        assert command[command.index("--appendonly") + 1] == "no", name


def test_monitoring_runs_only_in_its_profile() -> None:
    services = _services()
    assert set(services) >= MONITORING_SERVICES
    for name in MONITORING_SERVICES:
        assert services[name].get("profiles") == ["monitoring"], name
    for name in INFRA_SERVICES | APP_SERVICES:
        assert not services[name].get("profiles"), f"{name} must run without a profile"


@pytest.mark.parametrize("service", sorted(MONITORING_SERVICES))
def test_monitoring_mounts_files_of_the_repository_and_keeps_data_in_named_volumes(service: str) -> None:
    compose = _compose()
    volumes = [str(v) for v in compose["services"][service]["volumes"]]
    binds = [v.split(":")[0] for v in volumes if v.startswith("./")]
    assert binds, f"{service} mounts nothing from monitoring/"
    for source in binds:
        assert (ROOT / source).exists(), f"{service} mounts {source}, which is not in the repository"
        assert source.startswith("./monitoring/"), source
    named = [v.split(":")[0] for v in volumes if not v.startswith((".", "/"))]
    assert named and set(named) <= set(compose.get("volumes") or {}), f"{service}: data volume not declared"


def test_monitoring_images_are_pinned() -> None:
    for name in MONITORING_SERVICES:
        image = _services()[name]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: pin a release, not {image}"


def _final_stage(dockerfile: str) -> list[str]:
    lines = [line.strip() for line in dockerfile.replace("\\\n", " ").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    assert len(starts) >= 2, "the Dockerfile is multi-stage (builder + runtime)"
    return lines[starts[-1] :]


def test_dockerfile_runtime_stage() -> None:
    stage = _final_stage((ROOT / "Dockerfile").read_text())
    assert stage[0].split()[1].startswith("python:3.11")
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users, "the runtime stage sets a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, "the runtime stage runs as root"
    text = "\n".join(stage)
    assert "collectstatic" in text
    assert "EXPOSE 8000" in text
    assert re.search(r"^HEALTHCHECK .*python.*/healthz", text, re.MULTILINE)


def test_image_contains_every_local_app_and_module_the_settings_load() -> None:
    """A local app missing from the image only shows when the container starts."""
    settings_source = (ROOT / "ranking_site" / "settings" / "base.py").read_text()
    installed = re.findall(r'^\s*"([a-z_]+)",?$', settings_source, flags=re.MULTILINE)
    local_apps = {name for name in installed if (ROOT / name / "__init__.py").exists()}
    assert {"videos", "events", "scoring", "rankings", "web", "demo"} <= local_apps
    # Plain packages (core, leaderboard) are not installed apps; the layer contract lists every package.
    layered = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"])
    assert {"core", "leaderboard"} <= layered
    copied = set(re.findall(r"^COPY\s+(\S+)\s+\./", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE))
    missing = sorted((local_apps | layered | {"ranking_site", "manage.py"}) - copied)
    assert not missing, f"Dockerfile does not COPY {missing}"


def _builder_stage(dockerfile: str) -> list[str]:
    lines = [line.strip() for line in dockerfile.replace("\\\n", " ").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    assert len(starts) >= 2, "the Dockerfile is multi-stage (builder + runtime)"
    return lines[starts[0] : starts[-1]]


def test_dockerfile_installs_the_runtime_lock_with_hashes() -> None:
    stage = _builder_stage((ROOT / "Dockerfile").read_text())
    text = "\n".join(stage)
    assert re.search(r"^COPY requirements\.txt /tmp/requirements\.txt$", text, re.MULTILINE)
    installs = [cmd.strip() for line in stage for cmd in line.split("&&") if re.search(r"\bpip install\b", cmd)]
    assert any("-r /tmp/requirements.txt" in cmd for cmd in installs), f"no install of the lock: {installs}"
    # Every pip install in the builder is hash-checked: nothing unpinned slips in.
    unchecked = [cmd for cmd in installs if "--require-hashes" not in cmd]
    assert not unchecked, f"pip install without --require-hashes: {unchecked}"


def _lock_entries(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """A pip-compile lock file: normalized name -> (version, hashes); fails on anything unpinned or unhashed."""
    text = path.read_text()
    logical = [
        line for line in text.replace("\\\n", " ").splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    for line in logical:
        parts = line.split()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", parts[0])
        assert match, f"{path.name}: not an exact pin: {line!r}"
        hashes = frozenset(part.removeprefix("--hash=") for part in parts[1:] if part.startswith("--hash=sha256:"))
        assert hashes, f"{path.name}: {parts[0]} carries no sha256 hash"
        assert len(hashes) == len(parts) - 1, f"{path.name}: unexpected options on {parts[0]}: {line!r}"
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        assert name not in entries, f"{path.name}: {name} is pinned twice"
        entries[name] = (match.group(2), hashes)
    return entries


def _top_level_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.split("#")[0].strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_lock_pins_every_package_with_hashes_and_no_local_paths(lock: str) -> None:
    path = ROOT / lock
    entries = _lock_entries(path)
    assert {"django", "celery", "kombu", "billiard", "amqp", "vine", "asgiref", "sqlparse"} <= set(entries)
    text = path.read_text()
    assert "\n#    make lock\n" in text, f"{lock}: the header should name `make lock` as the regeneration command"
    # Locks resolve against PyPI only: no machine's paths, URLs or extra indexes in them
    # (option lines are already refused by _lock_entries; this covers the comments too).
    local = re.findall(
        r"file://\S*|https?://\S*|(?<![\w.])/[A-Za-z][\w.-]*/\S*|--(?:extra-)?index-url|--find-links", text
    )
    assert not local, f"{lock} mentions {local}"


@pytest.mark.parametrize(
    ("source", "lock"), [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")]
)
def test_lock_matches_its_top_level_pins(source: str, lock: str) -> None:
    """An edit to a .in file without `make lock` shows here."""
    locked = {name: version for name, (version, _) in _lock_entries(ROOT / lock).items()}
    pins = _top_level_pins(ROOT / source)
    assert pins
    stale = {name: (version, locked.get(name)) for name, version in pins.items() if locked.get(name) != version}
    assert not stale, f"{lock} is stale against {source} (run make lock): {stale}"


def test_dev_lock_holds_the_runtime_lock_unchanged() -> None:
    """One `pip install --require-hashes -r requirements-dev.txt` installs what production runs."""
    runtime = _lock_entries(ROOT / "requirements.txt")
    dev = _lock_entries(ROOT / "requirements-dev.txt")
    differing = sorted(name for name, entry in runtime.items() if dev.get(name) != entry)
    assert not differing, f"requirements-dev.txt pins these differently from requirements.txt: {differing}"
    assert set(_top_level_pins(ROOT / "requirements.in")) <= set(dev)
    assert "-r requirements.in" in (ROOT / "requirements-dev.in").read_text().splitlines()
    assert "-c requirements.txt" in (ROOT / "requirements-dev.in").read_text().splitlines()
