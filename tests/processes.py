"""Run the bridge and a Celery worker as real processes against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def process_env(**extra: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ranking_site.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}",
        "KAFKA_TOPIC": settings.KAFKA_TOPIC,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


class Proc:
    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        return int(self.popen.returncode)


def bridge(
    log_dir: Path, *, group: str, name: str = "bridge", max_wait_ms: int = 50, batch_size: int | None = None
) -> Proc:
    argv = [sys.executable, "manage.py", "kafka_bridge", "--group", group, "--max-wait-ms", str(max_wait_ms),
            "--lag-every-s", "1"]  # fmt: skip
    if batch_size is not None:
        argv += ["--batch-size", str(batch_size)]
    return Proc(name, argv, log_dir, process_env())


# One test worker consumes both queues (settings: CELERY_TASK_ROUTES), as the two workers of
# make run and docker compose do between them.
QUEUES = "batches,maintenance,webhooks"


def worker(log_dir: Path, *, name: str = "worker", concurrency: int = 4, queues: str = QUEUES) -> Proc:
    argv = [sys.executable, "-m", "celery", "-A", "ranking_site", "worker", "--pool", "threads",
            "--concurrency", str(concurrency), "-Q", queues, "-l", "info", "--without-gossip", "--without-mingle",
            "-n", f"{name}@%h"]  # fmt: skip
    return Proc(name, argv, log_dir, process_env())


def web(log_dir: Path, *, port: int, **env: str) -> Proc:
    """The web app under gunicorn with the Procfile's worker settings, as ``make run`` serves it."""
    argv = [sys.executable, "-m", "gunicorn", "ranking_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", "2", "--threads", "4", "--graceful-timeout", "3"]  # fmt: skip
    return Proc("web", argv, log_dir, process_env(**env))


def wait_for(predicate: object, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


@contextmanager
def running(*procs: Proc) -> Iterator[tuple[Proc, ...]]:
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def beat(log_dir: Path) -> Proc:
    argv = [sys.executable, "-m", "celery", "-A", "ranking_site", "beat", "-l", "info",
            "--schedule", str(log_dir / "celerybeat-schedule")]  # fmt: skip
    return Proc("beat", argv, log_dir, process_env())
