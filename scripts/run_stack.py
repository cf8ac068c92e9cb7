"""The whole local stack for ``make run``: prepare the data, then web, bridge, the three Celery
workers (batches, maintenance, webhooks) and beat.

Run by ``scripts/devstack.py run``, which has already started PostgreSQL, Valkey
and Tansu, exported their addresses (DATABASE_URL, REDIS_URL, CELERY_BROKER_URL,
KAFKA_BOOTSTRAP_SERVERS) and stops them once this script exits.

Before the processes start: migrate, create the Kafka topic, (re)set the dev
superuser ``admin`` with a fresh random password, replace the ``demo`` API key,
and seed a small demo data set when there are no videos yet. Then the Procfile's
processes run under honcho, which stops every one of them on Ctrl-C or SIGTERM
(and all of them when one exits).

    PORT=8000 DEVDATA_DIR=.devdata/run python scripts/run_stack.py
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import port_open  # scripts/ is on sys.path when this runs as a script

ROOT = Path(__file__).resolve().parent.parent
DEMO_SEED = ["--videos=300", "--users=100", "--events=30000", "--via=db"]


@dataclass
class Prepared:
    password: str
    api_key: str
    video_id: int | None


def prepare() -> Prepared:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ranking_site.settings.base")
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connections

    from core.kafka import topic_ensure
    from events.ingest import api_key_create
    from events.models import ApiKey
    from rankings.selectors import ranking_top
    from scoring.rebuild import rankings_ensure_built
    from videos.models import Video

    print("run: migrating the database", flush=True)
    call_command("migrate", "--noinput", verbosity=0)
    topic_ensure()

    password = secrets.token_urlsafe(12)
    admin = User.objects.filter(username="admin").first()
    if admin is None:
        User.objects.create_superuser("admin", "admin@example.com", password)
    else:  # the password was only ever printed: a new run prints a new one
        admin.set_password(password)
        admin.is_staff = admin.is_superuser = admin.is_active = True
        admin.save()

    ApiKey.objects.filter(name="demo", revoked=False).update(revoked=True)
    _, api_key = api_key_create(name="demo")

    if not Video.objects.exists():
        print("run: seeding demo data", flush=True)
        call_command("seed", *DEMO_SEED)
    else:
        rankings_ensure_built()  # Valkey may have restarted without its data
    top = ranking_top(window="day", limit=1).results
    video_id = (
        top[0].video["id"] if top else Video.objects.filter(status="published").values_list("id", flat=True).first()
    )
    # honcho forks its runners: hand them no open database sockets.
    connections.close_all()
    return Prepared(password=password, api_key=api_key, video_id=video_id)


def banner(prepared: Prepared, port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    video = prepared.video_id or 1
    return f"""
================================================================================
 Realtime Video Ranking is up
   Admin          {base}/admin/      user: admin   password: {prepared.password}
   API docs       {base}/api/docs/
   Rankings       {base}/api/v1/rankings/?window=day
   Demo API key   {prepared.api_key}

 Post an event:
   curl -X POST {base}/api/v1/events/ \\
        -H 'Authorization: Api-Key {prepared.api_key}' \\
        -H 'Content-Type: application/json' \\
        -d '{{"video_id": {video}, "type": "like"}}'
 Load test:
   .venv/bin/python scripts/loadgen.py --url {base} --api-key {prepared.api_key} --duration 30
 Ctrl-C stops everything.
================================================================================
"""


def announce_when_up(text: str, port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        time.sleep(0.3)
    sys.stdout.write(f"run: the web process did not open port {port} within {timeout:.0f}s\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procfile", default=str(ROOT / "Procfile"))
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    port = int(os.environ.get("PORT", "8000"))
    if port_open(port):
        print(f"run: port {port} is already in use; set PORT to another one", file=sys.stderr)
        return 1
    devdata = Path(os.environ.get("DEVDATA_DIR", ROOT / ".devdata" / "run")).resolve()
    devdata.mkdir(parents=True, exist_ok=True)

    prepared = prepare()

    from honcho.environ import parse_procfile
    from honcho.manager import Manager
    from honcho.printer import Printer

    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "PORT": str(port),
        "DEVDATA_DIR": str(devdata),
        "PYTHONUNBUFFERED": "1",
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "plain"),  # a person reads these lines
    }
    manager = Manager(Printer(sys.stdout))
    for name, command in parse_procfile(Path(args.procfile).read_text()).processes.items():
        manager.add_process(name, command, env=env, cwd=str(ROOT))
    threading.Thread(target=announce_when_up, args=(banner(prepared, port), port), daemon=True).start()
    manager.loop()
    return int(manager.returncode or 0)


if __name__ == "__main__":
    sys.exit(main())
