"""The vLLM serving dashboard, as code with grafana-foundation-sdk.

Every panel splits by `model` and `version` (legend "<model> <version>"), so
a canary sits beside its baseline on the same axes. Queries use the
dashboard's variables: `$model`, `$version`, the `$prometheus` and `$loki`
data sources and `$gpu_hourly_usd` for the cost panel.
`python -m llmplane.monitoring.dashboards --out DIR` writes the JSON that Grafana
provisions; `queries()` lists every PromQL and LogQL expression in it.
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmplane.monitoring import tenant_usage
from llmplane.monitoring import vllm_metrics as vm
from llmplane.monitoring.rules import BY

with warnings.catch_warnings():
    # The classic dashboard model is what file provisioning and the Grafana
    # sidecar load; the SDK nudges towards its v2 schema when it is imported.
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import common as common_builder
    from grafana_foundation_sdk.builders import dashboard, logs, loki, prometheus, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models.dashboard import VariableRefresh

UID = "llmplane-vllm"
PROMETHEUS = common.DataSourceRef(type_val="prometheus", uid="${prometheus}")
LOKI = common.DataSourceRef(type_val="loki", uid="${loki}")
SEL = 'model=~"$model", version=~"$version"'
LEGEND = "{{model}} {{version}}"
RATE = "$__rate_interval"
# The log agent labels streams of a model's pods with `model` and `version`;
# "All" is ".+", so Loki gets a matcher that excludes the empty value.
LOG_STREAM = '{model=~"$model", version=~"$version"}'
# A request log line whose first token took longer than the TTFT objective.
SLOW_FIRST_TOKEN_SECONDS = 2.5
# Ratings are sparse next to requests: each point of a feedback panel counts the last hour's.
FEEDBACK_WINDOW = "1h"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = LEGEND


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    targets: tuple[Target, ...]
    source: str = "prometheus"  # or "loki"
    logs: bool = False  # a log panel rather than a time series


def _rate(metric: vm.Metric, extra: str = "", series: str = "") -> str:
    return f"rate({metric.name}{series}{{{SEL}{extra}}}[{RATE}])"


def _percentiles(metric: vm.Metric, quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)) -> tuple[Target, ...]:
    return tuple(
        Target(f"histogram_quantile({q}, sum by ({BY}, le) ({_rate(metric, series='_bucket')}))",
               f"{LEGEND} p{round(q * 100)}")
        for q in quantiles
    )


def _ratio(numerator: str, denominator: str) -> str:
    return f"sum by ({BY}) ({numerator})\n/\nsum by ({BY}) ({denominator})"


def _feedback(metric: str, extra: str = "") -> str:
    return f"increase({metric}{{{SEL}{extra}}}[{FEEDBACK_WINDOW}])"


_OUTCOME = vm.FEEDBACK_TOTAL.name
_SCORE_SUM, _SCORE_COUNT = vm.FEEDBACK_SCORE.series_names()


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Traffic and errors", (
        Panel("Request rate", "Finished requests per second, whatever the reason.", "reqps",
              (Target(f"sum by ({BY}) ({_rate(vm.REQUEST_SUCCESS)})"),)),
        Panel("Errors", "Share of requests that finished with an engine error: the availability SLI.",
              "percentunit",
              (Target(_ratio(_rate(vm.REQUEST_SUCCESS, ', finished_reason="error"'), _rate(vm.REQUEST_SUCCESS))),)),
        Panel("Tokens per second", "Prompt tokens prefilled and tokens generated.", "short", (
            Target(f"sum by ({BY}) ({_rate(vm.PROMPT_TOKENS)})", f"{LEGEND} prompt"),
            Target(f"sum by ({BY}) ({_rate(vm.GENERATION_TOKENS)})", f"{LEGEND} generated"),
        )),
    )),
    ("Latency", (
        Panel("Time to first token", "What a user waits before text starts: the TTFT SLI.", "s",
              _percentiles(vm.TIME_TO_FIRST_TOKEN)),
        Panel("Inter-token latency", "Time between streamed tokens.", "s", _percentiles(vm.INTER_TOKEN_LATENCY)),
        Panel("End-to-end latency", "Request arrival to last token.", "s", _percentiles(vm.E2E_REQUEST_LATENCY)),
        Panel("Queue time", "Time spent waiting for a place in the batch.", "s",
              _percentiles(vm.REQUEST_QUEUE_TIME, (0.5, 0.99))),
    )),
    ("Engine", (
        Panel("Waiting and running requests", "Queue depth is the autoscaling signal.", "short", (
            Target(f"sum by ({BY}) ({vm.NUM_REQUESTS_WAITING.name}{{{SEL}}})", f"{LEGEND} waiting"),
            Target(f"sum by ({BY}) ({vm.NUM_REQUESTS_RUNNING.name}{{{SEL}}})", f"{LEGEND} running"),
        )),
        Panel("KV-cache usage", "Fullest replica; near 100% means preemptions follow.", "percentunit",
              (Target(f"max by ({BY}) ({vm.KV_CACHE_USAGE.name}{{{SEL}}})"),)),
        Panel("Prefix-cache hit rate", "Share of prompt tokens served from the prefix cache.", "percentunit",
              (Target(_ratio(_rate(vm.PREFIX_CACHE_HITS), _rate(vm.PREFIX_CACHE_QUERIES))),)),
        Panel("Preemptions", "Requests evicted from the KV cache per second, to be recomputed.", "short",
              (Target(f"sum by ({BY}) ({_rate(vm.NUM_PREEMPTIONS)})"),)),
    )),
    ("GPUs and cost", (
        Panel("GPU utilisation", "Average over the GPUs serving the version; high while batching, "
              "so a poor scaling signal.", "percent",
              (Target(f"avg by ({BY}) ({vm.GPU_UTIL.name}{{{SEL}}})"),)),
        Panel("GPU memory used", "Framebuffer in use; vLLM reserves most of it for the KV cache.", "percentunit",
              (Target(_ratio(f"{vm.GPU_FB_USED.name}{{{SEL}}}",
                             f"{vm.GPU_FB_USED.name}{{{SEL}}} + {vm.GPU_FB_FREE.name}{{{SEL}}}")),)),
        Panel("Cost per million tokens", "GPU-hours at $gpu_hourly_usd per GPU over prompt and generated "
              "tokens.", "currencyUSD",
              (Target(f"count by ({BY}) ({vm.GPU_UTIL.name}{{{SEL}}}) * $gpu_hourly_usd / 3600\n/\n"
                      f"sum by ({BY}) ({_rate(vm.PROMPT_TOKENS)} + {_rate(vm.GENERATION_TOKENS)})\n* 1e6"),)),
    )),
    ("Tenants", (
        Panel("Tokens per tenant", "Prompt and output tokens per second each tenant draws from each model, from "
              "the gateway's access logs (Loki's ruler).", "short",
              (Target(f"sum by (tenant, model) ({tenant_usage.TOKENS}) / 60", "{{tenant}} {{model}}"),)),
        Panel("Cost per tenant", "Each model's GPUs apportioned to its tenants by their share of its tokens, at "
              "$gpu_hourly_usd per GPU-hour.", "currencyUSD",
              (Target(f"sum by (tenant) ({tenant_usage.GPUS}) * $gpu_hourly_usd", "{{tenant}} per hour"),)),
        Panel("Refused requests per tenant", "Requests the gateway answered 401, 403 or 429 (key refused, model "
              "not allowed, budget spent).", "reqps",
              (Target(f'sum by (tenant, status) ({tenant_usage.REQUESTS}{{status=~"401|403|429"}}) / 60',
                      "{{tenant}} {{status}}"),)),
    )),
    ("Experiments", (
        # Each arm is a version of the model: pick the model, and its arms share the axes.
        Panel("Arms: time to first token", "TTFT of each arm, median and 95th percentile.", "s",
              _percentiles(vm.TIME_TO_FIRST_TOKEN, (0.5, 0.95))),
        Panel("Arms: time per output token", "Mean time between generated tokens of each arm.", "s",
              (Target(_ratio(_rate(vm.INTER_TOKEN_LATENCY, series="_sum"),
                             _rate(vm.INTER_TOKEN_LATENCY, series="_count"))),)),
        Panel("Arms: error rate", "Share of each arm's requests that finished with an engine error.", "percentunit",
              (Target(_ratio(_rate(vm.REQUEST_SUCCESS, ', finished_reason="error"'), _rate(vm.REQUEST_SUCCESS))),)),
        Panel("Arms: feedback score", f"Mean score (0 to 1) clients gave each arm's answers over the last "
              f"{FEEDBACK_WINDOW}, from the feedback service.", "percentunit",
              (Target(_ratio(_feedback(_SCORE_SUM), _feedback(_SCORE_COUNT))),)),
        Panel("Arms: task success", f"Answers labelled success among those labelled success or failure, over the "
              f"last {FEEDBACK_WINDOW}.", "percentunit",
              (Target(_ratio(_feedback(_OUTCOME, ', label="success"'),
                             _feedback(_OUTCOME, ', label=~"success|failure"'))),)),
        Panel("Arms: refusals reported", f"Answers labelled refusal among all labelled ones, over the last "
              f"{FEEDBACK_WINDOW}.", "percentunit",
              (Target(_ratio(_feedback(_OUTCOME, ', label="refusal"'), _feedback(_OUTCOME))),)),
        Panel("Arms: ratings", f"Scores and labels posted per arm over the last {FEEDBACK_WINDOW}: how much "
              "the quality panels rest on.", "short", (
                  Target(f"sum by ({BY}) ({_feedback(_SCORE_COUNT)})", f"{LEGEND} scores"),
                  Target(f"sum by ({BY}) ({_feedback(_OUTCOME)})", f"{LEGEND} labels"),
              )),
    )),
    ("Request logs", (
        Panel("Log lines", "Request log lines per model version, from Loki.", "short",
              (Target(f"sum by ({BY}) (count_over_time({LOG_STREAM} [$__auto]))"),), source="loki"),
        Panel("Failed requests", "Error lines, in vLLM's text logs or JSON request logs.", "",
              (Target(f"{LOG_STREAM} |~ `(?i)\\berror\\b`", ""),), source="loki", logs=True),
        Panel("Slow first tokens", f"JSON request log lines whose first token took over "
              f"{SLOW_FIRST_TOKEN_SECONDS}s.", "",
              (Target(f"{LOG_STREAM} | json | ttft_seconds > {SLOW_FIRST_TOKEN_SECONDS}", ""),),
              source="loki", logs=True),
    )),
)


def _panel(spec: Panel) -> Any:
    source = LOKI if spec.source == "loki" else PROMETHEUS
    builder: Any
    if spec.logs:
        builder = logs.Panel().show_time(True).wrap_log_message(True).enable_log_details(True)
    else:
        builder = (timeseries.Panel().unit(spec.unit)
                   .legend(common_builder.VizLegendOptions().show_legend(True)
                           .display_mode(common.LegendDisplayMode.TABLE)
                           .placement(common.LegendPlacement.BOTTOM)))
    builder = builder.title(spec.title).description(spec.description).datasource(source).span(12).height(8)
    for index, target in enumerate(spec.targets):
        query: Any = loki.Dataquery() if source is LOKI else prometheus.Dataquery().range()
        query = query.expr(target.expr).ref_id(chr(ord("A") + index))
        builder = builder.with_target(query.legend_format(target.legend) if target.legend else query)
    return builder


def _variables() -> list[Any]:
    def label_values(label: str, selector: str) -> Any:
        return (dashboard.QueryVariable(label).label(label.capitalize()).datasource(PROMETHEUS)
                .query(f"label_values({selector}, {label})").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                .multi(True).include_all(True).all_value(".+"))

    return [
        dashboard.DatasourceVariable("prometheus").label("Prometheus").type("prometheus"),
        dashboard.DatasourceVariable("loki").label("Loki").type("loki"),
        label_values("model", vm.NUM_REQUESTS_RUNNING.name),
        label_values("version", f'{vm.NUM_REQUESTS_RUNNING.name}{{model=~"$model"}}'),
        dashboard.TextBoxVariable("gpu_hourly_usd").label("GPU $/hour").default_value("4"),
    ]


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    board = (dashboard.Dashboard("llmplane / vLLM serving").uid(UID)
             .tags(["llmplane", "vllm"]).refresh("30s").time("now-6h", "now")
             .timezone("browser").variables(_variables()))
    for title, panels in ROWS:
        board = board.with_row(dashboard.Row(title))
        for spec in panels:
            board = board.with_panel(_panel(spec))
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def queries(board: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Every expression of the dashboard, by query language ('promql', 'logql')."""
    board = board or build()
    found: dict[str, list[str]] = {"promql": [], "logql": []}
    language = {"prometheus": "promql", "loki": "logql"}
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            found[language[panel["datasource"]["type"]]].append(target["expr"])
    return found


def variable_queries(board: dict[str, Any] | None = None) -> list[str]:
    """The label_values(...) queries behind the model and version pickers."""
    board = board or build()
    return [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmplane.monitoring.dashboards",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder that receives the dashboard JSON")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{UID}.json"
    path.write_text(json.dumps(build(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(path)


if __name__ == "__main__":
    main()
