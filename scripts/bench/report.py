"""The report: the targets table on stdout, and this mode's section of docs/benchmarks.md
(the results are embedded in it as JSON, so the plot can show both modes)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from .config import BATCH, BRIDGE_ARGS, DOC, GOALS, REFERENCES


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


INFO = "information"

# The ingest stage's CPU per component: (key in the results, label), in the printed order.
COMPONENTS = (
    ("web", "web"), ("bridge", "bridge"), ("worker", "worker"), ("valkey", "Valkey"), ("tansu", "Kafka (Tansu)"),
    ("postgres", "Postgres"), ("load generator", "load generator"),
)  # fmt: skip
OTHER = "other processes"


def cpu_total_per_1k(ing: dict[str, Any]) -> float:
    """CPU-seconds per 1,000 events over every process of the benchmark (load generator included,
    other processes on the machine excluded)."""
    if "cpu_s_per_1k_all" in ing:  # the median over runs of each run's total
        return float(ing["cpu_s_per_1k_all"])
    return float(sum(v for k, v in ing["cpu_s_per_1k"].items() if k != OTHER))


def valkey_us_per_event(ing: dict[str, Any]) -> float | None:
    per_k = ing["cpu_s_per_1k"].get("valkey")
    return None if per_k is None else 1000.0 * float(per_k)  # CPU-s per 1,000 events = ms per event


def cpu_rows(ing: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(component, CPU-s per 1k events, % of a core) rows, the total and the other processes last."""
    per_k, pct = ing["cpu_s_per_1k"], ing["cpu_core_pct"]
    rows = [(label, _fmt(per_k[key], 3), _fmt(pct.get(key))) for key, label in COMPONENTS if key in per_k]
    known = {key for key, _ in COMPONENTS} | {OTHER}
    rows += [(key, _fmt(per_k[key], 3), _fmt(pct.get(key))) for key in per_k if key not in known]
    rows.append(("total, all processes of the benchmark", _fmt(cpu_total_per_1k(ing), 3), _fmt(ing["cpu_total_pct"])))
    if OTHER in per_k:
        rows.append(("other (processes outside the benchmark)", _fmt(per_k[OTHER], 3), _fmt(pct.get(OTHER))))
    return rows


VALKEY_COMMANDS_NOTE = (
    "from INFO commandstats over the run; a script's entry (`evalsha`) includes the commands it runs, "
    "which are listed under their own names too"
)


def valkey_command_rows(ing: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(command, calls per event, µs of Valkey time per event), the most expensive first."""
    commands = ing.get("valkey_commands") or {}
    ordered = sorted(commands.items(), key=lambda item: -item[1]["us_per_event"])
    return [(name.upper(), _fmt(c["calls_per_event"], 2), _fmt(c["us_per_event"], 1)) for name, c in ordered]


def headline(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, measured, goal, verdict) rows: the goals of SPEC §12, then figures for information."""
    mode = res.get("profile", {}).get("name", "full")
    videos = res.get("dataset", {}).get("videos", 0)
    rows: list[tuple[str, str, str, str]] = []
    ing = res.get("ingest", {}).get("median")
    if ing:
        goal = GOALS["ingest"][mode]
        rows.append((f"Ingest end to end, {_fmt(videos)} videos (events/s)", _fmt(ing["end_to_end_per_s"]),
                     f"≥ {_fmt(goal)} ({mode} run)", _check(ing["end_to_end_per_s"] >= goal)))  # fmt: skip
        cpu_goal = GOALS["cpu_s_per_1k"][mode]
        total = cpu_total_per_1k(ing)
        rows.append(("CPU, all processes (CPU-s per 1,000 events)", _fmt(total, 3), f"≤ {cpu_goal:.2f} ({mode} run)",
                     _check(total <= cpu_goal)))  # fmt: skip
        us = valkey_us_per_event(ing)
        if us is not None:
            at_goal_size = videos >= GOALS["valkey_goal_videos"]
            label = f"Valkey CPU per event, {_fmt(videos)} videos (µs)"
            verdict = _check(us <= GOALS["valkey_us_per_event"]) if at_goal_size else "n/a (not the goal's size)"
            rows.append((label, _fmt(us, 1), f"≤ {GOALS['valkey_us_per_event']:.0f} at 1,000,000 videos", verdict))
            rows.append(("  ceiling it implies (events/s per Valkey core)", _fmt(1e6 / us if us > 0 else None),
                         f"≥ {_fmt(1e6 / GOALS['valkey_us_per_event'])}", verdict))  # fmt: skip
    cmp_ = res.get("compare", {})
    if "naive_ingest_x" in cmp_:
        naive = cmp_.get("naive", {}).get("inserts_per_s")
        rows.append((f"Ingest vs naive per-row ({_fmt(naive)} inserts/s) (\u00d7)", _fmt(cmp_["naive_ingest_x"], 2),
                     f"≥ {GOALS['naive_ingest_x']}\u00d7", _check(cmp_["naive_ingest_x"] >= GOALS["naive_ingest_x"])))  # fmt: skip
    for key, label in (("naive_top20_x", "Top-20 read vs naive query (\u00d7 faster)"),
                       ("naive_rank_x", "Video rank read vs naive query (day window, \u00d7 faster)")):  # fmt: skip
        if key in cmp_:
            rows.append((label, _fmt(cmp_[key], 0), f"≥ {_fmt(GOALS['naive_reads_x'])}\u00d7",
                         _check(cmp_[key] >= GOALS["naive_reads_x"])))  # fmt: skip
    fr = res.get("freshness", {}).get("median")
    if fr:
        rate = GOALS["fresh_rate"]
        ok = fr["p99_ms"] <= GOALS["fresh_p99_ms"] and fr["background_per_s"] >= rate * 0.95
        rows.append((f"Freshness p99 at {_fmt(fr['background_per_s'])} events/s (ms)", _fmt(fr["p99_ms"]),
                     f"≤ {GOALS['fresh_p99_ms']:.0f} at {_fmt(rate)} ev/s", _check(ok)))  # fmt: skip
    rd = res.get("reads", {}).get("median", {}).get("top20")
    if rd:
        rate = GOALS["top20_rate"]
        ok = rd["paced_p99_ms"] <= GOALS["top20_p99_ms"] and rd["paced_rps"] >= rate * 0.95
        rows.append((f"Top-20 p99 at {_fmt(rd['paced_rps'])} req/s, open loop (ms)", _fmt(rd["paced_p99_ms"], 1),
                     f"≤ {GOALS['top20_p99_ms']:.0f} at {_fmt(rate)} req/s", _check(ok)))  # fmt: skip
    # For information: no longer goals.
    fold = res.get("fold")
    if fold:
        rows.append(("Fold of the runs' minute rows, deferred (Postgres CPU-s per 1,000 events)",
                     _fmt(fold["cpu_s_per_1k_events"], 4), "in no figure above", INFO))  # fmt: skip
    rx = res.get("reindex", {}).get("median")
    if rx:
        rows.append((f"Reindex {_fmt(videos)} videos (s)", _fmt(rx["wall_s"], 1),
                     f"{REFERENCES['reindex_s']:.0f} s for 1,000,000 (reference)", INFO))  # fmt: skip
    if "lib_update_x" in cmp_:
        # Two rows, said apart: end to end (HTTP, Kafka, Postgres, Redis) is not the stage the library
        # measures; the Redis stage is (the same events onto the same Valkey, in-process).
        rows.append(("Update rate vs leaderboard library, end to end (\u00d7)", _fmt(cmp_["lib_update_x"], 2),
                     f"{REFERENCES['lib_update_x']:.0f}\u00d7 (reference)", INFO))  # fmt: skip
    if "stage_update_x" in cmp_:
        rows.append(("Update rate vs leaderboard library, Redis stage (\u00d7)", _fmt(cmp_["stage_update_x"], 2),
                     f"{REFERENCES['lib_update_x']:.0f}\u00d7 (reference)", INFO))  # fmt: skip
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def fmt_runs(values: Sequence[Any], digits: int = 0) -> str:
    return ", ".join(_fmt(v, digits) for v in values)


def _phase_rows(med: dict[str, Any], runs: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The pipeline's rate and the machine's load while the clients post and while the backlog drains
    (results from before these figures have none)."""
    if "applied_posting_per_s" not in med:
        return []
    rows = []
    for label, posting, draining in (
        ("Applied to the sorted sets while posting / draining (events/s)", "applied_posting_per_s",
         "applied_draining_per_s"),
        ("Machine busy while posting / draining (% of a core, 200 = both)", "machine_posting_pct",
         "machine_draining_pct"),
    ):  # fmt: skip
        rows.append((label, f"{_fmt(med[posting])} / {_fmt(med[draining])}",
                     ", ".join(f"{_fmt(x[posting])} / {_fmt(x[draining])}" for x in runs)))  # fmt: skip
    return rows


def render_section(res: dict[str, Any]) -> str:
    prof = res["profile"]
    m = res["machine"]
    ds = res["dataset"]
    runs = prof["runs"]
    out: list[str] = []
    out.append(f"Run {res['finished']} ({res['duration_s'] / 60:.1f} min), commit `{m['commit']}`, "
               f"command `{res['command']}`.")  # fmt: skip
    if prof["name"] == "quick":
        out.append(f"Quick mode: {_fmt(ds['videos'])} videos, each figure the median of {runs} runs (the full "
                   "benchmark uses 3), shorter load phases; reindex and read figures are for the smaller set.")  # fmt: skip
    else:
        out.append(f"Each figure is the median of {runs} runs; the individual runs are listed beside it.")
    out.append("")
    out.append(f"**Machine**: {m['cpu']}, {m['cores']} cores ({m['physical_cores']} physical), "
               f"{m['memory_gib']} GiB memory; {m['os']}; Python {m['python']}, PostgreSQL {m['postgres']}, "
               f"Valkey {m['valkey']}, Tansu (Kafka API). Servers, web, bridge, worker and load generator all share "
               f"the {m['cores']} cores. HTTP load: {m['load_tool']}.")  # fmt: skip
    lay = res["layout"]
    out.append(f"**Processes**: gunicorn {lay['web']}; `kafka_bridge {' '.join(BRIDGE_ARGS)}` \u00d71; "
               f"celery worker {lay['worker']}; {lay['clients']} load-generating client processes.")  # fmt: skip
    out.append(f"**Data**: {_fmt(ds['videos'])} videos, {_fmt(ds['users'])} users, {_fmt(ds['events'])} seeded "
               f"events over 7 days (Zipf {ds['zipf']}), {_fmt(ds['counter_rows'])} hourly counter rows; ranked "
               f"videos: {_fmt(ds['ranked_all'])} all-time, {_fmt(ds['ranked_day'])} in the day window.")  # fmt: skip
    out.append("")
    out += _table(("Goal (SPEC §12)", "Measured", "Goal", "Verdict"), headline(res))
    out.append("")

    ing = res.get("ingest")
    if ing:
        med = ing["median"]
        r = ing["runs"]
        out.append("#### Ingest (HTTP POST, batches of 500 → sorted sets)")
        out.append("")
        out += _table(("Figure", "Median", "Runs"), [
            ("End to end (events/s)", _fmt(med["end_to_end_per_s"]), fmt_runs([x["end_to_end_per_s"] for x in r])),
            ("Accepted by the API (events/s)", _fmt(med["accepted_per_s"]), fmt_runs([x["accepted_per_s"] for x in r])),
            ("Events per run", _fmt(med["events"]), fmt_runs([x["events"] for x in r])),
            ("Drain after the last POST (s)", _fmt(med["drain_seconds"], 1), fmt_runs([x["drain_seconds"] for x in r], 1)),
            *_phase_rows(med, r),
            ("POST p50 / p99 (ms)", f"{_fmt(med['post_p50_ms'])} / {_fmt(med['post_p99_ms'])}",
             fmt_runs([x["post_p99_ms"] for x in r])),
            ("Errors", _fmt(med["errors"]), fmt_runs([x["errors"] for x in r])),
        ])  # fmt: skip
        out.append("")
        out.append("CPU per component during the ingest runs (median over runs; % of one core over the run's "
                   "wall time). Process-tree CPU time of each server and app process; the total is every process "
                   "of the benchmark, load generator included; *other* is what the rest of the machine used "
                   "meanwhile (other work on this shared machine), outside the total:")  # fmt: skip
        out.append("")
        rows: list[tuple[str, ...]] = list(cpu_rows(med))
        out += _table(("Component", "CPU-s per 1k events", "% of a core"), rows)
        out.append("")
        if res.get("fold"):
            out.append(fold_note(res["fold"]))
            out.append("")
        valkey_rows = valkey_command_rows(med)
        if valkey_rows:
            out.append(f"Where Valkey's time went during the ingest runs (median over runs; {VALKEY_COMMANDS_NOTE}):")
            out.append("")
            out += _table(("Command", "Calls per event", "µs per event"), valkey_rows)
            out.append("")
    fr = res.get("freshness")
    if fr:
        med, r = fr["median"], fr["runs"]
        out.append("#### Freshness (POST accepted → score changed in `GET /rankings/videos/<id>/`)")
        out.append("")
        out += _table(("Figure", "Median", "Runs"), [
            ("Background load (events/s)", _fmt(med["background_per_s"]), fmt_runs([x["background_per_s"] for x in r])),
            ("Probes", _fmt(med["probes"]), fmt_runs([x["probes"] for x in r])),
            ("p50 (ms)", _fmt(med["p50_ms"]), fmt_runs([x["p50_ms"] for x in r])),
            ("p99 (ms)", _fmt(med["p99_ms"]), fmt_runs([x["p99_ms"] for x in r])),
            ("Never seen within 10 s", _fmt(med["lost"]), fmt_runs([x["lost"] for x in r])),
        ])  # fmt: skip
        out.append("")
    rd = res.get("reads")
    if rd:
        out.append("#### Reads (gunicorn; the paced load is open loop)")
        out.append("")
        rows = []
        for name, label in (("top20", "`/rankings/?window=day&limit=20`"), ("video", "`/rankings/videos/<id>/`")):
            med, r = rd["median"][name], [x[name] for x in rd["runs"]]
            rows.append(
                (
                    label,
                    "closed loop, " + _fmt(med["max_connections"]) + " conns",
                    _fmt(med["max_rps"]),
                    _fmt(med["max_p50_ms"], 1),
                    _fmt(med["max_p99_ms"], 1),
                    fmt_runs([x["max_rps"] for x in r]),
                )
            )
            rows.append((label, "paced (open loop), 32 conns", _fmt(med["paced_rps"]), _fmt(med["paced_p50_ms"], 1),
                         _fmt(med["paced_p99_ms"], 1), fmt_runs([x["paced_p99_ms"] for x in r], 1)))  # fmt: skip
        out += _table(("Endpoint", "Load", "req/s", "p50 ms", "p99 ms", "Runs (req/s or p99)"), rows)
        out.append("")
    rx = res.get("reindex")
    if rx:
        med, r = rx["median"], rx["runs"]
        out.append("#### Rebuild (`manage.py reindex`)")
        out.append("")
        out += _table(("Figure", "Median", "Runs"), [
            ("Command wall time (s)", _fmt(med["wall_s"], 1), fmt_runs([x["wall_s"] for x in r], 1)),
            ("Rebuild as reported (s)", _fmt(med["rebuild_s"], 1), fmt_runs([x["rebuild_s"] for x in r], 1)),
            ("Valkey memory per ranked video (bytes)", _fmt(rx["memory"]["bytes_per_ranked_video"]),
             f"{_fmt(rx['memory']['memory_bytes'] / 2**20, 0)} MiB for {_fmt(rx['memory']['ranked_all'])} ranked"),
        ])  # fmt: skip
        out.append("")
    cmp_ = res.get("compare")
    if cmp_:
        out.append("#### Side by side, same data and servers")
        out.append("")
        ours = cmp_["ours"]
        rows = [
            ("Ingest, end to end (events/s)", _fmt(ours["ingest_per_s"]), _fmt(cmp_.get("naive", {}).get("inserts_per_s")),
             _fmt(cmp_.get("naive_ingest_x"), 1), _fmt(cmp_.get("lib", {}).get("updates_per_s")),
             _fmt(cmp_.get("lib_update_x"), 2)),
            ("Redis update stage, in-process (events/s)", _fmt(cmp_.get("stage", {}).get("events_per_s")), "\u2013",
             "\u2013", _fmt(cmp_.get("lib", {}).get("updates_per_s")), _fmt(cmp_.get("stage_update_x"), 2)),
            ("Valkey CPU-s per 1k events, update stage", _fmt(cmp_.get("stage", {}).get("valkey_cpu_s_per_1k"), 3),
             "\u2013", "\u2013", _fmt(cmp_.get("lib", {}).get("valkey_cpu_s_per_1k"), 3), "\u2013"),
            ("Top-20 p50 (ms)", _fmt(ours["top20_p50_ms"], 2), _fmt(cmp_.get("naive", {}).get("top20_p50_ms"), 1),
             _fmt(cmp_.get("naive_top20_x"), 0), _fmt(cmp_.get("lib", {}).get("top20_p50_ms"), 2),
             _fmt(cmp_.get("lib_top20_x"), 2)),
            ("Single-video rank, day window p50 (ms)", _fmt(ours["rank_p50_ms"], 2),
             _fmt(cmp_.get("naive", {}).get("rank_p50_ms"), 1), _fmt(cmp_.get("naive_rank_x"), 0),
             _fmt(cmp_.get("lib", {}).get("rank_p50_ms"), 2), _fmt(cmp_.get("lib_rank_x"), 2)),
            ("A video's standings in every window p50 (ms)", _fmt(ours.get("standings_p50_ms"), 2), "\u2013", "\u2013",
             "\u2013", "\u2013"),
        ]  # fmt: skip
        out += _table(("Figure", "Ours", "Naive Postgres", "Ours \u00d7", "leaderboard 3.7.3", "Ours \u00d7"), rows)
        out.append("")
        out.append(f"Naive table: {_fmt(cmp_.get('naive_rows'))} rows (one per counted event), loaded in "
                   f"{_fmt(cmp_.get('naive_load_s'), 0)} s. Library board: {_fmt(cmp_.get('lib_members'))} members "
                   "copied from our day ranking. Ours: end-to-end ingest above; reads are the selectors "
                   "(`ranking_top` with metadata; `ranking_standings(window=\"day\")`, the video's rank, score and "
                   "percentile in the global and the category day lists, the question the naive query (global day "
                   "rank) and the library (rank in one list) answer; `ranking_standings` of every window, 12 "
                   "standings, for information) called in-process, like the naive SQL and the library calls; over "
                   "HTTP add the read figures above.")  # fmt: skip
        out.append("")
        if cmp_.get("stage"):
            st = cmp_["stage"]
            out.append("Update rates, which is which: the **Ingest** row is our whole path (HTTP, Kafka, Postgres "
                       "counters and dedupe, then Redis) against the library's in-process per-event `change_score_for` "
                       "on one sorted set. The **Redis update stage** row is like for like: the same event stream, "
                       f"in-process and single-threaded, summed per batch of {BATCH} events into (video, hour) deltas "
                       "with window masks as the worker does and applied with `deltas_apply` (one `APPLY` Lua call "
                       "per batch, up to 10 sorted sets per delta: 5 windows, global and category) on the same Valkey "
                       f"and rankings; median of {fmt_runs([r['events_per_s'] for r in cmp_.get('stage_runs', [])])} "
                       f"events/s, {_fmt(st.get('deltas'))} deltas for {_fmt(st.get('events_applied'))} events per "
                       "run. Valkey CPU for the library includes its board copy (first run) and its reads.")  # fmt: skip
            out.append("")
    out.append(f"<!-- bench-data {json.dumps(res, separators=(',', ':'), default=str)} -->")
    return "\n".join(out)


DOC_TEMPLATE = """# Benchmarks

`make bench` (1,000,000 videos) and `make bench-quick` (100,000 videos, under
3 minutes) run `scripts/bench`, which rewrites the two result sections
below and `docs/benchmarks.png`; everything else on this page is written by hand.

## Results: full run

<!-- bench:full:start -->
(not run yet)
<!-- bench:full:end -->

## Results: quick run

<!-- bench:quick:start -->
(not run yet)
<!-- bench:quick:end -->
"""


def doc_update(res: dict[str, Any], path: Path = DOC) -> None:
    text = path.read_text() if path.exists() else DOC_TEMPLATE
    mode = res["profile"]["name"]
    start, end = f"<!-- bench:{mode}:start -->", f"<!-- bench:{mode}:end -->"
    if start not in text or end not in text:
        text = text.rstrip() + f"\n\n## Results: {mode} run\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}{start}\n{render_section(res)}\n{end}{tail}")


def doc_results(path: Path = DOC) -> dict[str, dict[str, Any]]:
    """The results embedded in the page, by mode, so the plot can show both runs."""
    found: dict[str, dict[str, Any]] = {}
    if path.exists():
        for match in re.finditer(r"<!-- bench-data (\{.*?\}) -->", path.read_text()):
            with suppress(ValueError):
                data = json.loads(match.group(1))
                found[data["profile"]["name"]] = data
    return found


def print_table(res: dict[str, Any]) -> None:
    rows = headline(res)
    width = max((len(r[0]) for r in rows), default=10)
    goal_w = max((len(r[2]) for r in rows), default=10)
    print()
    print(f"{'Goal (SPEC §12)':<{width}}  {'Measured':>12}  {'Goal':<{goal_w}}  Verdict")
    for metric, value, goal, verdict in rows:
        print(f"{metric:<{width}}  {value:>12}  {goal:<{goal_w}}  {verdict.replace('*', '')}")
    print_ingest(res)


def print_stage(res: dict[str, Any]) -> None:
    """What an ``--only`` run measured: its one stage's medians."""
    ing = res.get("ingest", {}).get("median")
    if ing:
        print(f"\nIngest end to end: {ing['end_to_end_per_s']:,.0f} events/s; {ing['accepted_per_s']:,.0f} accepted/s")
        print_ingest(res)
    fresh = res.get("freshness", {}).get("median")
    if fresh:
        print(f"\nFreshness: p50 {fresh['p50_ms']:.0f} ms, p99 {fresh['p99_ms']:.0f} ms "
              f"at {fresh['background_per_s']:,.0f} events/s of background load")  # fmt: skip
    reads = res.get("reads", {}).get("median")
    if reads:
        for name in ("top20", "video"):
            r = reads[name]
            print(f"\nReads, {name}: {r['max_rps']:,.0f} req/s max; p99 {r['paced_p99_ms']:.1f} ms "
                  f"at {r['paced_rps']:,.0f} req/s, open loop")  # fmt: skip


def fold_note(fold: dict[str, Any]) -> str:
    return (
        f"Deferred, in none of the rows above: the runs' minute rows move into the hourly rows once their "
        f"hour has left the hour window (`counters_fold`). Folded at the end of the benchmark: "
        f"{_fmt(fold['moved'])} minute rows holding {_fmt(fold['events'])} events, "
        f"{fold['postgres_cpu_s']:.1f} s of Postgres CPU: {fold['cpu_s_per_1k_events']:.4f} CPU-s per 1,000 events "
        f"({fold['us_per_row']:.1f} µs a row)."
    )


def print_ingest(res: dict[str, Any]) -> None:
    """The ingest stage's CPU per component."""
    ing = res.get("ingest", {}).get("median")
    if ing:
        cpu = cpu_rows(ing)
        width = max(len(r[0]) for r in cpu)
        print()
        print(f"{'CPU per component, ingest':<{width}}  {'CPU-s / 1k events':>17}  {'% of a core':>11}")
        for name, per_k, pct in cpu:
            print(f"{name:<{width}}  {per_k:>17}  {pct:>11}")
        if res.get("fold"):
            print(fold_note(res["fold"]))
        valkey_rows = valkey_command_rows(ing)
        if valkey_rows:
            print()
            print(f"{'Valkey by command, ingest':<{width}}  {'calls / event':>17}  {'µs / event':>11}")
            for name, calls, us in valkey_rows:
                print(f"{name:<{width}}  {calls:>17}  {us:>11}")
            print(f"({VALKEY_COMMANDS_NOTE})")
    print()
