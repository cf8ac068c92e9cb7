"""The processes the benchmark measures: its servers, its app processes, their CPU time."""

from __future__ import annotations

import platform
import re
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import devstack
import psutil

from .config import BENCH_DIR, ROOT
from .reads import wrk_available

# --- processes and CPU accounting ----------------------------------------------------


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its descendants, including reaped children."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        with suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


class Service:
    """A child process of the benchmark in its own session; stopped by pid only."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if regex.search(self.output()):
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}); see {self.log_path}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            children = []
            with suppress(psutil.Error):
                children = psutil.Process(self.pid).children(recursive=True)
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
            # Children the parent did not take down with it (prefork workers, gunicorn workers).
            for child in children:
                with suppress(psutil.Error):
                    if child.is_running():
                        child.kill()
        self.log.close()


# --- the servers ------------------------------------------------------------------------


def bench_stack() -> devstack.Stack:
    """PostgreSQL, Valkey and Tansu of the benchmark's own folder (``.devdata/bench``)."""
    return devstack.Stack(BENCH_DIR)


def database_recreate(base_url: str, name: str) -> str:
    """A fresh database on the bench server: every run starts from the same state."""
    import psycopg2

    prefix, _, _ = base_url.rpartition("/")
    host_port = prefix.rsplit("@", 1)[1]
    host, port = host_port.split(":")
    conn = psycopg2.connect(host=host, port=int(port), user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"{prefix}/{name}"


def server_pids(stack: devstack.Stack) -> dict[str, int]:
    state = stack.load()
    pids = {"valkey": int(state["valkey"]["pid"]), "tansu": int(state["tansu"]["pid"])}
    pg = stack._pg_pid(stack.root / "postgres")
    if pg:
        pids["postgres"] = int(pg)
    return pids


# --- Valkey ------------------------------------------------------------------------------


def valkey_wait_loaded(client: Any, timeout: float = 300.0) -> None:
    """A restarted Valkey first loads its last snapshot and answers LOADING until then."""
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.exceptions.BusyLoadingError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def redis_used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def valkey_cpu_s(client: Any) -> float:
    """Valkey's own CPU time so far (user + system, main and background threads)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def valkey_commands(client: Any) -> dict[str, tuple[int, int]]:
    """Per command, (calls, microseconds) so far, from INFO commandstats. A script's own entry
    (``evalsha``) includes the time of the commands it runs, which are also counted under theirs."""
    return {
        name.removeprefix("cmdstat_"): (int(stats["calls"]), int(stats["usec"]))
        for name, stats in client.info("commandstats").items()
    }


def valkey_commands_per_event(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], events: int, *, most: int = 6
) -> dict[str, dict[str, float]]:
    """The commands that took most of Valkey's time between two snapshots: calls and µs per event."""
    grown = {
        name: (calls - before.get(name, (0, 0))[0], usec - before.get(name, (0, 0))[1])
        for name, (calls, usec) in after.items()
    }
    top = sorted((item for item in grown.items() if item[1][1] > 0), key=lambda item: -item[1][1])[:most]
    n = max(events, 1)
    return {name: {"calls_per_event": calls / n, "us_per_event": usec / n} for name, (calls, usec) in top}


# --- the machine -------------------------------------------------------------------------------


def machine_info(client: Any) -> dict[str, Any]:
    from django.db import connection

    cpu = platform.processor()
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with connection.cursor() as cur:
        cur.execute("SHOW server_version")
        pg = cur.fetchone()[0]
    server = client.info("server")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu or "unknown",
        "cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": pg,
        "valkey": server.get("valkey_version") or server.get("redis_version"),
        "commit": commit,
        "load_tool": "wrk (closed loop) and the Python open-loop generator (paced)"
        if wrk_available()
        else "Python keep-alive load generator, closed and open loop (wrk not installable)",
    }
