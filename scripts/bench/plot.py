"""docs/benchmarks.png: the figures of both modes' last runs beside the targets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import GOALS, PLOT


def plot(results: dict[str, dict[str, Any]], path: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in ("full", "quick") if m in results]
    colors = {"full": "#1f77b4", "quick": "#9ecae1"}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    fig.suptitle("Realtime Video Ranking benchmark (2 cores shared by servers, app and load; medians of runs)")

    def bars(ax: Any, labels: list[str], getter: Callable[[dict[str, Any]], list[float | None]], title: str,
             ylabel: str, target: float | None = None, log: bool = False, target_label: str = "target") -> None:  # fmt: skip
        width = 0.8 / max(len(modes), 1)
        for i, mode in enumerate(modes):
            values = [v if v is not None and v == v else 0.0 for v in getter(results[mode])]
            xs = [x + i * width for x in range(len(labels))]
            drawn = ax.bar(xs, values, width=width, label=f"{mode} ({results[mode]['dataset']['videos']:,} videos)",
                           color=colors[mode])  # fmt: skip
            ax.bar_label(drawn, labels=[f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" for v in values], fontsize=7)
        ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(labels))], labels, fontsize=8)
        if target is not None:
            ax.axhline(target, color="#d62728", linestyle="--", linewidth=1, label=target_label)
        if log:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.legend(fontsize=7)

    def get(res: dict[str, Any], *keys: str) -> Any:
        cur: Any = res
        for k in keys:
            if not isinstance(cur, dict) or k not in cur:
                return None
            cur = cur[k]
        return cur

    bars(axes[0][0], ["end to end", "accepted by API"],
         lambda r: [get(r, "ingest", "median", "end_to_end_per_s"), get(r, "ingest", "median", "accepted_per_s")],
         "Ingest (events/s)", "events/s", GOALS["ingest"]["full"], target_label="goal ≥ 10,000 (full run)")  # fmt: skip
    axes[0][0].axhline(GOALS["ingest"]["quick"], color="#ff9896", linestyle=":", linewidth=1,
                       label="goal ≥ 20,000 (quick run)")  # fmt: skip
    axes[0][0].legend(fontsize=7)
    bars(axes[0][1], ["p50", "p99"],
         lambda r: [get(r, "freshness", "median", "p50_ms"), get(r, "freshness", "median", "p99_ms")],
         f"Freshness at {GOALS['fresh_rate']:,.0f} events/s (ms)", "ms", GOALS["fresh_p99_ms"],
         target_label=f"p99 goal ≤ {GOALS['fresh_p99_ms']:.0f}")  # fmt: skip
    bars(axes[0][2], ["top-20 p50", "top-20 p99", "video p50", "video p99"],
         lambda r: [get(r, "reads", "median", "top20", "paced_p50_ms"), get(r, "reads", "median", "top20", "paced_p99_ms"),
                    get(r, "reads", "median", "video", "paced_p50_ms"), get(r, "reads", "median", "video", "paced_p99_ms")],
         f"Read latency, open loop at {GOALS['top20_rate']:,.0f} req/s (ms)", "ms", GOALS["top20_p99_ms"],
         target_label=f"top-20 p99 ≤ {GOALS['top20_p99_ms']:.0f}")  # fmt: skip
    bars(axes[1][0], ["top-20", "video"],
         lambda r: [get(r, "reads", "median", "top20", "max_rps"), get(r, "reads", "median", "video", "max_rps")],
         "Read throughput, closed loop (req/s)", "req/s", GOALS["top20_rate"],
         target_label=f"{GOALS['top20_rate']:,.0f} req/s")  # fmt: skip
    parts = (("web", "web"), ("bridge", "bridge"), ("worker", "worker"), ("valkey", "Valkey"), ("tansu", "Kafka"),
             ("postgres", "Postgres"), ("load generator", "load"))  # fmt: skip
    bars(axes[1][1], [label for _, label in parts] + ["total"],
         lambda r: [get(r, "ingest", "median", "cpu_s_per_1k", k) for k, _ in parts]
         + [get(r, "ingest", "median", "cpu_s_per_1k_all")],
         "CPU-s per 1,000 events, ingest", "CPU-s", GOALS["cpu_s_per_1k"]["full"],
         target_label=f"total ≤ {GOALS['cpu_s_per_1k']['full']:.2f} (full), {GOALS['cpu_s_per_1k']['quick']:.2f} (quick)")  # fmt: skip
    bars(axes[1][2], ["ingest\nvs naive", "top-20\nvs naive", "rank\nvs naive", "updates\nvs lib\n(e2e)",
                      "updates\nvs lib\n(Redis)", "top-20\nvs lib", "rank\nvs lib"],
         lambda r: [get(r, "compare", k) for k in ("naive_ingest_x", "naive_top20_x", "naive_rank_x", "lib_update_x",
                                                     "stage_update_x", "lib_top20_x", "lib_rank_x")],
         "Ours ÷ alternative (\u00d7 better, log)", "\u00d7", 1.0, log=True, target_label="parity")  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
