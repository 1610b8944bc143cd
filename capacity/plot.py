"""A picture of a capacity plan: demand, replicas and TTFT over time (matplotlib, no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

from .planner import Plan
from .trace import credit

MINUTE = 60.0


def _per_minute(values: list[tuple[float, float]], minutes: int, how: str) -> list[float]:
    buckets: list[list[float]] = [[] for _ in range(minutes)]
    for t, v in values:
        m = int(t // MINUTE)
        if 0 <= m < minutes:
            buckets[m].append(v)
    out = []
    for b in buckets:
        if not b:
            out.append(math.nan)
        elif how == "p99":
            ordered = sorted(b)
            out.append(ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)])
        else:
            out.append(sum(b))
    return out


def write_plot(p: Plan, path: str | Path, trace_credit: str | None = None) -> Path:
    """Write a PNG with three panels: requests and prompt tokens per second; replicas (policy, static, oracle);
    TTFT p99 per minute against the SLO."""
    try:
        import matplotlib
    except ImportError as error:  # pragma: no cover - depends on the install
        raise RuntimeError("plotting needs matplotlib: pip install 'llmplane[plot]'") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = p.trace
    minutes = int(trace.duration // MINUTE) + 1
    xs = [m + 0.5 for m in range(minutes)]
    requests = _per_minute([(t, 1.0) for t in trace.arrivals], minutes, "sum")
    tokens = _per_minute(list(zip(trace.arrivals, map(float, trace.prompt_tokens))), minutes, "sum")

    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    t = p.target
    fig.suptitle(f"{t.environment} · {t.model}:{t.version} · {trace.name}")
    ax1.bar(xs, [r / MINUTE for r in requests], width=0.9, color="#8aa9d6", label="requests/s")
    ax1.set_ylabel("requests / s")
    twin = ax1.twinx()
    twin.plot(xs, [k / MINUTE for k in tokens], color="#c0504d", lw=1.2, label="prompt tokens/s")
    twin.set_ylabel("prompt tokens / s")
    ax1.set_title("demand")
    handles = ax1.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax1.legend(handles, ["requests/s", "prompt tokens/s"], loc="upper right", fontsize=8)

    colours = {"policy": "#1f77b4", "static": "#7f7f7f", "oracle": "#2ca02c"}
    for row in p.rows:
        samples = row.result.samples
        if not samples:
            continue
        ax2.step([s.t / MINUTE for s in samples], [s.replicas for s in samples], where="post",
                 color=colours.get(row.name), lw=1.4, label=f"{row.name} ({row.result.gpu_hours:.1f} GPU-h)")
        if row.name == "policy":
            ax2.step([s.t / MINUTE for s in samples], [s.ready for s in samples], where="post",
                     color=colours["policy"], lw=0.8, ls="--", label="policy, ready")
    ax2.set_ylabel("replicas")
    ax2.set_title("replicas (billed from request; ready after cold start)")
    ax2.legend(loc="upper right", fontsize=8)

    for row in p.rows:
        p99 = _per_minute(list(zip(trace.arrivals, row.result.ttft)), minutes, "p99")
        ax3.plot(xs, [min(v, 60.0) for v in p99], color=colours.get(row.name), lw=1.2,
                 label=f"{row.name} ({row.result.within_slo:.1%} within SLO)")
    ax3.axhline(t.profile.ttft_seconds, color="#d62728", ls=":", lw=1, label=f"SLO {t.profile.ttft_seconds:g} s")
    ax3.set_yscale("log")
    ax3.set_ylabel("TTFT p99 per minute (s)")
    ax3.set_xlabel("minutes into the trace")
    ax3.set_title("time to first token")
    ax3.legend(loc="upper right", fontsize=8)

    fig.text(0.01, 0.005, trace_credit or credit(p.trace.name), fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
