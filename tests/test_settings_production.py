"""Production settings refuse to start when misconfigured, and pass Django's deploy checks.

Each case starts a fresh interpreter with a clean environment, the way a container
starts; nothing here needs a server (``check --deploy`` does not connect).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SETUP = "import django; django.setup()"
# Only what an interpreter needs to run; nothing from the test stack's settings leaks in.
PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")

GOOD_ENV = {
    "DJANGO_SETTINGS_MODULE": "ranking_site.settings.production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "rankings.example.com",
    "DATABASE_URL": "postgres://ranking:s3cret@db.internal:5432/ranking",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "CELERY_BROKER_URL": "redis://cache.internal:6379/1",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-1.internal:9092,kafka-2.internal:9092",
}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {name: os.environ[name] for name in PASS_THROUGH if name in os.environ}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**base, "PYTHONWARNINGS": "ignore", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def without(*names: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in GOOD_ENV.items() if k not in names}
    env.update(overrides)
    return env


def assert_refused(result: subprocess.CompletedProcess[str], name: str) -> None:
    assert result.returncode != 0, f"started although {name} is wrong:\n{result.stdout}"
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line, result.stderr
    assert name in last_line, f"the error does not name {name}: {last_line}"


def test_starts_with_good_environment() -> None:
    code = f"{SETUP}; from django.conf import settings as s; print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.ALLOWED_HOSTS)"
    result = run(["-c", code], GOOD_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "['rankings.example.com']"]


def test_webhooks_refuse_private_targets_unless_turned_on() -> None:
    code = f"{SETUP}; from django.conf import settings as s; print(s.WEBHOOKS_ALLOW_PRIVATE_TARGETS)"
    assert run(["-c", code], GOOD_ENV).stdout.split() == ["False"]
    assert run(["-c", code], without(WEBHOOKS_ALLOW_PRIVATE_TARGETS="true")).stdout.split() == ["True"]
    local = {**without("DJANGO_SETTINGS_MODULE"), "DJANGO_SETTINGS_MODULE": "ranking_site.settings.base"}
    assert run(["-c", code], local).stdout.split() == ["True"]


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(without("SECRET_KEY"), id="unset"),
        pytest.param(without(SECRET_KEY=""), id="empty"),
        pytest.param(without(SECRET_KEY="dev-only-insecure-secret-key-change-me-0123456789abcdef"), id="dev-default"),
    ],
)
def test_refuses_without_secret_key(env: dict[str, str]) -> None:
    assert_refused(run(["-c", SETUP], env), "SECRET_KEY")


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_refuses_with_debug_on(value: str) -> None:
    assert_refused(run(["-c", SETUP], without(DEBUG=value)), "DEBUG")


@pytest.mark.parametrize("env", [without("ALLOWED_HOSTS"), without(ALLOWED_HOSTS=" , ")], ids=["unset", "blank"])
def test_refuses_without_allowed_hosts(env: dict[str, str]) -> None:
    assert_refused(run(["-c", SETUP], env), "ALLOWED_HOSTS")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("DB_CONN_MAX_AGE", "abc"),
        ("DB_CONN_MAX_AGE", "-1"),
        ("KAFKA_TOPIC_PARTITIONS", "0"),
        ("SECURE_SSL_REDIRECT", "perhaps"),
        ("SECURE_HSTS_SECONDS", "a year"),
        ("RANKING_TRENDING_HALF_LIFE_S", "6h"),
        ("DATABASE_URL", "not-a-url"),
        ("DATABASE_URL", "redis://cache.internal:6379/2"),
    ],
)
def test_bad_value_fails_loudly_naming_the_variable(name: str, value: str) -> None:
    assert_refused(run(["-c", SETUP], without(**{name: value})), name)


def test_database_url_error_does_not_echo_the_password() -> None:
    result = run(["-c", SETUP], without(DATABASE_URL="mysql://ranking:hunter2-secret@db/ranking"))
    assert_refused(result, "DATABASE_URL")
    assert "hunter2-secret" not in result.stderr


DEPLOY_CHECK = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]


def test_deploy_check_passes() -> None:
    result = run(DEPLOY_CHECK, GOOD_ENV)
    assert result.returncode == 0, result.stderr + result.stdout


def test_deploy_check_still_warns_about_real_problems() -> None:
    result = run(DEPLOY_CHECK, without(SECRET_KEY="too-short", SECURE_HSTS_SECONDS="0"))
    assert result.returncode != 0
    assert "security.W009" in result.stderr and "security.W004" in result.stderr


def _compose_web_environment() -> dict[str, str]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    env = services["web"]["environment"]
    # ${NAME:-default} -> default, as `docker compose up` with nothing exported
    return {str(k): re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", str(v)) for k, v in env.items()}


def test_docker_compose_environment_passes_the_deploy_check() -> None:
    env = _compose_web_environment()
    assert env["DJANGO_SETTINGS_MODULE"] == "ranking_site.settings.production"
    result = run(DEPLOY_CHECK, env)
    assert result.returncode == 0, result.stderr + result.stdout
