"""The whole run, stage after stage, and the command line (``python scripts/bench``)."""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from httpclient import TRANSPORT_ERRORS, Client

import bench

from .config import (
    BATCH,
    BENCH_DB,
    BENCH_DIR,
    BIN,
    BRIDGE_ARGS,
    CELERY_CONCURRENCY,
    CELERY_POOL,
    DOC,
    FRESH_RATE,
    FULL,
    INGEST_CLIENTS,
    LEADERBOARD_DB,
    PLOT,
    QUICK,
    READ_WARMUP_S,
    ROOT,
    WEB_THREADS,
    WEB_WORKERS,
    Profile,
)
from .fold import fold_measure
from .freshness import freshness_run
from .ingest import ingest_run
from .leaderboard_lib import leaderboard_run, leaderboard_venv
from .naive import naive_ingest_run, naive_load, naive_reads_run
from .ours import in_process_reads, leaderboard_stream, redis_stage_run
from .plot import plot
from .reads import http_load, reads_run, snapshot_note, wrk_available
from .reindex import reindex_run
from .report import doc_results, doc_update, fmt_runs, print_stage, print_table
from .servers import (
    Service,
    bench_stack,
    database_recreate,
    machine_info,
    server_pids,
    valkey_cpu_s,
    valkey_wait_loaded,
)
from .traffic import Traffic
from .util import free_port, median_of, say


def new_topic_env() -> dict[str, str]:
    """A topic of the benchmark's own and its consumer group, as the services' environment names them."""
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    return {"KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": f"{topic}-group"}


@dataclass
class Bench:
    profile: Profile
    only: str | None = None  # one load stage (ingest, freshness, reads) after the setup, no comparisons
    env: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    bridge: Service | None = None
    port: int = 0
    api_key: str = ""
    stack: Any = None
    results: dict[str, Any] = field(default_factory=dict)

    def child_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}

    def manage(self, *args: str, quiet: bool = False) -> str:
        proc = subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL if quiet else None)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {proc.stdout[-1000:]}")
        return proc.stdout

    def start_services(self) -> dict[str, int]:
        logs = BENCH_DIR / "logs"
        self.port = free_port()
        web = Service("web", [str(BIN / "gunicorn"), "ranking_site.wsgi:application", "-b", f"127.0.0.1:{self.port}",
                              "-w", str(WEB_WORKERS), "-k", "gthread", "--threads", str(WEB_THREADS),
                              "--backlog", "2048", "--keep-alive", "30"], self.env, logs)  # fmt: skip
        bridge = Service("bridge", [str(BIN / "python"), "manage.py", "kafka_bridge", *BRIDGE_ARGS,
                                    "--lag-every-s", "5"], self.env, logs)  # fmt: skip
        worker = Service("worker", [str(BIN / "celery"), "-A", "ranking_site", "worker", "--pool", CELERY_POOL,
                                    "--concurrency", str(CELERY_CONCURRENCY), "-Q", "batches,maintenance",
                                    "-l", "info", "--without-gossip", "--without-mingle", "-n", "bench@%h"],
                         self.env, logs)  # fmt: skip
        self.services += [web, bridge, worker]
        self.bridge = bridge
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with suppress(*TRANSPORT_ERRORS), Client("127.0.0.1", self.port, timeout=2) as client:
                if client.get("/healthz").status == 200:
                    break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"gunicorn did not answer; see {web.log_path}")
        worker.wait_for_log(r"ready", 60)
        bridge.wait_for_log(r"assigned partitions", 60)
        return {"web": web.pid, "bridge": bridge.pid, "worker": worker.pid}

    def services_on_new_topic(self) -> dict[str, int]:
        """The services restarted on a new, empty topic. Tansu's memory engine keeps every record and
        reads a partition's whole history on each fetch, so its CPU per event grows with what the topic
        ever held (docs/benchmarks.md); a Kafka broker finds an offset in its index whatever the log holds."""
        from core.kafka import topic_ensure

        self.stop_services()
        topic = new_topic_env()
        self.env.update(topic)
        os.environ.update(topic)
        topic_ensure(topic=topic["KAFKA_TOPIC"])
        return self.start_services()

    def skipped_records_read_again(self) -> int:
        """Gaps the bridge found in a partition's offsets so far (scoring.bridge.OffsetCheck)."""
        return self.bridge.output().count("delivered offset") if self.bridge else 0

    def stop_services(self) -> None:
        for service in reversed(self.services):
            with suppress(Exception):
                service.stop()
        self.services.clear()

    def run(self) -> dict[str, Any]:
        prof = self.profile
        started = time.monotonic()
        stages = ["tools", "servers", "seed", "reindex", "services", "ingest", "freshness", "reads", "naive",
                  "leaderboard", "fold", "report"]  # fmt: skip

        def stage(name: str, note: str = "") -> None:
            say(f"\n==> [{stages.index(name) + 1}/{len(stages)}] {name} {note}".rstrip())

        stage("tools", "(wrk from Debian)")
        subprocess.run(["bash", str(ROOT / "scripts" / "install_bench_tools.sh")], check=False)
        if not wrk_available():
            say("  wrk unavailable: the closed-loop reads use the Python load generator instead")

        stage("servers", "(PostgreSQL, Valkey, Tansu from wheels)")
        self.stack = bench_stack()
        base = self.stack.up()
        self.env = {
            **os.environ, **base,
            "DATABASE_URL": database_recreate(base["DATABASE_URL"], BENCH_DB),
            "DJANGO_SETTINGS_MODULE": "ranking_site.settings.base",
            "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "THROTTLE_INGEST_PER_KEY": "10000000/min", "THROTTLE_INGEST_PER_IP": "10000000/min",
            **new_topic_env(),
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        os.environ.update(self.env)
        import django

        django.setup()
        from core.kafka import topic_ensure
        from core.redis import redis_client
        from leaderboard import keys as rk
        from leaderboard import union

        client = redis_client()
        valkey_wait_loaded(client)
        client.flushall()
        self.manage("migrate", "-v0")
        topic_ensure()
        self.results["machine"] = machine_info(client)

        stage("seed", f"({prof.videos:,} videos, {prof.events:,} events over 7 days)")
        seed_out = self.manage("seed", "--videos", str(prof.videos), "--users", str(prof.users), "--events",
                               str(prof.events), "--days", "7", "--via", "db", "--seed", "1", "--zipf", str(prof.zipf))  # fmt: skip
        say("  " + seed_out.strip().replace("\n", "\n  "))
        match = re.search(r"([0-9]+) counter rows", seed_out)
        self.results["dataset"] = {"videos": prof.videos, "users": prof.users, "events": prof.events,
                                   "zipf": prof.zipf, "counter_rows": int(match.group(1)) if match else None}  # fmt: skip

        stage("reindex", f"(\u00d7{prof.runs}; memory measured from an empty Valkey)")
        reindex = [reindex_run(env=self.env, client=client, fresh=(i == 0)) for i in range(prof.runs)]
        self.results["reindex"] = {"runs": reindex, "median": median_of(reindex), "memory": reindex[0]}
        say(f"  reindex: {fmt_runs([r['wall_s'] for r in reindex], 1)} s; "
            f"{reindex[0]['bytes_per_ranked_video']:.0f} bytes per ranked video")  # fmt: skip
        self.results["dataset"]["ranked_all"] = reindex[-1]["ranked_all"]
        self.results["dataset"]["ranked_day"] = reindex[-1]["ranked_day"]

        stage("services", "(gunicorn, kafka_bridge, celery worker)")
        self.api_key = self.manage("create_api_key", "bench", "--quiet").strip().splitlines()[-1]
        pids = self.start_services()
        cpu_pids = {**pids, **server_pids(self.stack)}
        self.results["layout"] = {
            "web": f"{WEB_WORKERS} workers \u00d7 {WEB_THREADS} threads (gthread)",
            "worker": f"--pool {CELERY_POOL} --concurrency {CELERY_CONCURRENCY}",
            "clients": INGEST_CLIENTS,
        }
        probe_ids = random.Random(2).sample(Traffic.load(zipf=prof.zipf).video_ids, 200)
        traffic = Traffic.load(zipf=prof.zipf, exclude=set(probe_ids))
        # Warm-up: connections, caches and the consumer group settle before anything is measured.
        ingest_run(port=self.port, api_key=self.api_key, traffic=traffic, clients=INGEST_CLIENTS, seconds=2.0,
                   cpu_pids=cpu_pids, valkey=client)  # fmt: skip

        stage(
            "ingest",
            f"({INGEST_CLIENTS} clients \u00d7 batches of {BATCH}, {prof.ingest_s:.0f} s per run, \u00d7{prof.runs})",
        )
        ingest = []
        for i in range(0 if self.only in ("freshness", "reads") else prof.runs):
            if i:  # each run starts, as the first does, on a topic holding only its warm-up's events
                cpu_pids = {**self.services_on_new_topic(), **server_pids(self.stack)}
                ingest_run(port=self.port, api_key=self.api_key, traffic=traffic, clients=INGEST_CLIENTS,
                           seconds=2.0, cpu_pids=cpu_pids, valkey=client)  # fmt: skip
            rereads = self.skipped_records_read_again()
            r = ingest_run(port=self.port, api_key=self.api_key, traffic=traffic, clients=INGEST_CLIENTS,
                           seconds=prof.ingest_s, cpu_pids=cpu_pids, valkey=client)  # fmt: skip
            r["skipped_records_read_again"] = self.skipped_records_read_again() - rereads
            say(f"  run {i + 1}: {r['end_to_end_per_s']:,.0f} events/s end to end, {r['accepted_per_s']:,.0f} "
                f"accepted/s, drain {r['drain_seconds']:.1f}s, errors {r['errors']}; applied "
                f"{r['applied_posting_per_s']:,.0f}/s while posting, {r['applied_draining_per_s']:,.0f}/s draining "
                f"(machine busy {r['machine_posting_pct']:.0f}% / {r['machine_draining_pct']:.0f}% of a core)"
                + (f", records the consumer skipped and the bridge read again: {r['skipped_records_read_again']}"
                   if r["skipped_records_read_again"] else ""))  # fmt: skip
            ingest.append(r)
        self.results["ingest"] = {"runs": ingest, "median": median_of(ingest)}
        if self.only == "ingest":
            return self.results

        stage(
            "freshness",
            f"({FRESH_RATE:,.0f} events/s background, open loop, {prof.fresh_s:.0f} s per run, \u00d7{prof.runs})",
        )
        fresh = []
        for i in range(0 if self.only == "reads" else prof.runs):
            r = freshness_run(port=self.port, api_key=self.api_key, traffic=traffic, probe_ids=probe_ids,
                              seconds=prof.fresh_s)  # fmt: skip
            say(
                f"  run {i + 1}: p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms over {r['probes']} probes, "
                f"background {r['background_per_s']:,.0f} events/s"
            )
            fresh.append(r)
        self.results["freshness"] = {"runs": fresh, "median": median_of(fresh)}
        if self.only == "freshness":
            return self.results

        stage(
            "reads",
            f"({self.results['machine']['load_tool'].split(' ')[0]}, {prof.read_s:.0f} s per load, \u00d7{prof.runs})",
        )
        day = union.union_lists(window="day")
        ranked = [
            rk.video_id_of(m)
            for key, card in zip(day.keys, day.cards, strict=True)
            for m in client.zrandmember(key, round(5000 * card / max(day.total, 1))) or []
        ]
        top_paths = ["/api/v1/rankings/?window=day&limit=20"]
        video_paths = [f"/api/v1/rankings/videos/{vid}/" for vid in ranked]
        # Warm-up, as for ingest: until now no worker has served a read, and the first seconds of
        # reads (each worker's first requests on these views) had tails of 50-400 ms that the
        # steady state does not have. Not measured.
        for paths in (top_paths, video_paths):
            http_load(port=self.port, paths=paths, connections=32, seconds=READ_WARMUP_S)
        reads = []
        for i in range(prof.runs):
            r = {"top20": reads_run(port=self.port, paths=top_paths, seconds=prof.read_s, valkey=client),
                 "video": reads_run(port=self.port, paths=video_paths, seconds=prof.read_s, valkey=client)}  # fmt: skip
            say(f"  run {i + 1}: top-20 {r['top20']['max_rps']:,.0f} req/s max, p99 {r['top20']['paced_p99_ms']:.1f} ms "
                f"at {r['top20']['paced_rps']:,.0f} req/s{snapshot_note(r['top20'])}; video {r['video']['max_rps']:,.0f} "
                f"req/s max, p99 {r['video']['paced_p99_ms']:.1f} ms at {r['video']['paced_rps']:,.0f} req/s"
                f"{snapshot_note(r['video'])}")  # fmt: skip
            reads.append(r)
        self.results["reads"] = {"runs": reads, "median": median_of(reads)}
        if self.only == "reads":
            return self.results
        ours_reads = median_of([in_process_reads(video_ids=ranked, samples=prof.reads_in_process)
                                for _ in range(prof.runs)])  # fmt: skip
        self.stop_services()  # the comparisons run alone on the machine, as ours did

        stage("naive", "(a row per event, GROUP BY at read time)")
        compare: dict[str, Any] = {"ours": {"ingest_per_s": self.results["ingest"]["median"]["end_to_end_per_s"],
                                            **ours_reads}}  # fmt: skip
        load = naive_load()
        say(f"  loaded {load['rows']:,} rows in {load['load_s']:.0f}s")
        naive_runs = []
        for i in range(prof.runs):
            r = {**naive_ingest_run(traffic=traffic, seconds=prof.naive_ingest_s),
                 **naive_reads_run(video_ids=ranked, samples=prof.naive_samples)}  # fmt: skip
            say(f"  run {i + 1}: {r['inserts_per_s']:,.0f} inserts/s, top-20 {r['top20_p50_ms']:,.0f} ms, "
                f"rank {r['rank_p50_ms']:,.0f} ms")  # fmt: skip
            naive_runs.append(r)
        naive = median_of(naive_runs)
        compare.update(naive=naive, naive_rows=load["rows"], naive_load_s=load["load_s"])
        compare["naive_ingest_x"] = compare["ours"]["ingest_per_s"] / naive["inserts_per_s"]
        compare["naive_top20_x"] = naive["top20_p50_ms"] / compare["ours"]["top20_p50_ms"]
        compare["naive_rank_x"] = naive["rank_p50_ms"] / compare["ours"]["rank_p50_ms"]

        stage("leaderboard", "(leaderboard==3.7.3 in its own virtualenv, one change_score_for per event)")
        python = leaderboard_venv()
        if python is not None:
            stream = BENCH_DIR / "leaderboard-stream.txt"
            leaderboard_stream(traffic, stream, int(prof.lib_s * 20_000))
            lib_runs = []
            day_keys = [rk.ranking_key("day", cid) for cid in union.union_lists(window="day").category_ids]
            for i in range(prof.runs):
                cpu_before = valkey_cpu_s(client)
                r = leaderboard_run(python=python, port=int(base["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]),
                                    stream=stream, seconds=prof.lib_s, skip=0, fill=(i == 0),
                                    reads=prof.reads_in_process, source_keys=day_keys)  # fmt: skip
                # Includes the copy (first run) and the reads: an upper bound for the updates alone.
                r["valkey_cpu_s_per_1k"] = 1000 * (valkey_cpu_s(client) - cpu_before) / max(r["events_applied"], 1)
                say(f"  run {i + 1}: {r['updates_per_s']:,.0f} updates/s, top-20 {r['top20_p50_ms']:.2f} ms, "
                    f"rank {r['rank_p50_ms']:.2f} ms ({r['members']:,} members)")  # fmt: skip
                lib_runs.append(r)
            lib = median_of(lib_runs)
            compare.update(lib=lib, lib_members=lib_runs[0].get("members_copied", lib["members"]))
            compare["lib_update_x"] = compare["ours"]["ingest_per_s"] / lib["updates_per_s"]
            compare["lib_top20_x"] = lib["top20_p50_ms"] / compare["ours"]["top20_p50_ms"]
            compare["lib_rank_x"] = lib["rank_p50_ms"] / compare["ours"]["rank_p50_ms"]
            # Like for like: our Redis update stage alone, on the same stream, Valkey and rankings.
            stage_runs = []
            for i in range(prof.runs):
                r = redis_stage_run(stream=stream, seconds=prof.lib_s)
                say(f"  run {i + 1}: our Redis stage {r['events_per_s']:,.0f} events/s "
                    f"({r['batches']:,} batches of {BATCH}, {r['deltas']:,} deltas)")  # fmt: skip
                stage_runs.append(r)
            compare["stage"] = median_of(stage_runs)
            compare["stage_runs"] = stage_runs
            compare["stage_update_x"] = compare["stage"]["events_per_s"] / lib["updates_per_s"]
            redis_client().from_url(base["REDIS_URL"].rsplit("/", 1)[0] + f"/{LEADERBOARD_DB}").flushdb()
        self.results["compare"] = compare

        stage("fold", "(the minute rows the runs left, moved into the hourly rows)")
        fold = fold_measure(postgres_pid=cpu_pids["postgres"])
        say(f"  {fold['moved']:,} minute rows ({fold['events']:,} events) in {fold['seconds']:.1f} s: "
            f"{fold['postgres_cpu_s']:.1f} s of Postgres CPU, {fold['cpu_s_per_1k_events']:.4f} CPU-s per 1,000 "
            f"events, {fold['us_per_row']:.1f} µs a row")  # fmt: skip
        self.results["fold"] = fold

        stage("report")
        self.results["profile"] = {"name": prof.name, "runs": prof.runs}
        self.results["duration_s"] = time.monotonic() - started
        self.results["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.results["command"] = "make bench-quick" if prof.name == "quick" else "make bench"
        return self.results

    def close(self) -> None:
        self.stop_services()
        if self.stack is not None:
            say("stopping the bench servers")
            self.stack.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100,000 videos, 2 runs, shorter loads (< 3 minutes)")
    parser.add_argument("--no-doc", action="store_true", help="print the table only; leave docs/ alone")
    parser.add_argument("--scope", action="store_true",
                        help="only one ranking scope's capacity through the apply script, on a private Valkey "
                        "(100,000 and 1,000,000 members; scripts/bench/scope.py)")  # fmt: skip
    parser.add_argument("--only", choices=["ingest", "freshness", "reads"],
                        help="set up as usual, run this one load stage and print its figures; docs/ left alone")  # fmt: skip
    args = parser.parse_args(argv)
    if args.scope:
        from .scope import print_scope, scope_run

        say("==> one scope's capacity (deltas through deltas_apply on a private Valkey)")
        print_scope(scope_run(seconds=3.0 if args.quick else 10.0))
        return 0
    runner = Bench(profile=QUICK if args.quick else FULL, only=args.only)
    try:
        results = runner.run()
    finally:
        runner.close()
    if args.only:
        print_stage(results)
        return 0
    print_table(results)
    if not args.no_doc:
        doc_update(results)
        plot(doc_results())
        say(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")
    return 0
