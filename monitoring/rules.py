"""Alert rules for models served by vLLM, as a PrometheusRule with SLO parameters.

The burn-rate alerts are the multiwindow, multi-burn-rate alerts of the
Google SRE workbook, chapter "Alerting on SLOs"
(https://sre.google/workbook/alerting-on-slos/): page when the error budget
burns 14.4 times too fast over 1h (and still over 5m) or 6 times over 6h (and
30m); open a ticket at 3 times over 1d (and 2h) or once over 3d (and 6h). The
short window lets an alert stop soon after the burn stops.

Each model's burn-rate alerts compare against its own error budget
(`AlertParams.slos`): models that share an objective share one set of
branches, selected by the `model` label, and the recorded ratios stay shared,
one rule per window. A model's canary is likewise judged against its own TTFT
bound and availability objective. `monitoring/alerts.yaml` is
`prometheus_rule()` with the default parameters, one SLO for every model
(`python -m llmplane.monitoring.rules --write`); components build their own with the
SLOs of the models a cluster serves. `rule_groups()` turns a PrometheusRule
into the plain rule file that promtool and Prometheus read.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from llmplane.monitoring import vllm_metrics as vm
from llmplane.monitoring.tenant_usage import tenant_cost_rules
from prometheus_client.utils import floatToGoString

ALERTS_FILE = Path(__file__).with_name("alerts.yaml")

# (severity, burn rate, long window, short window), windows in seconds.
BURN_WINDOWS: tuple[tuple[str, float, int, int], ...] = (
    ("page", 14.4, 3600, 300),
    ("page", 6, 6 * 3600, 1800),
    ("ticket", 3, 86400, 7200),
    ("ticket", 1, 3 * 86400, 6 * 3600),
)
CANARY_WINDOW = 600
BY = "model, version"


@dataclass(frozen=True)
class Slo:
    """What users are promised, per model and version, over 30 days."""

    ttft_seconds: float = 2.5  # must be a bound of vLLM's TTFT histogram
    ttft_objective: float = 0.99  # share of requests with a first token within ttft_seconds
    availability_objective: float = 0.999  # share of requests that do not end in an error

    def __post_init__(self) -> None:
        if self.ttft_seconds not in vm.TIME_TO_FIRST_TOKEN.buckets:
            raise ValueError(
                f"ttft_seconds={self.ttft_seconds} is not a bucket bound of "
                f"{vm.TIME_TO_FIRST_TOKEN.name}; choose one of {list(vm.TIME_TO_FIRST_TOKEN.buckets)}")
        for name in ("ttft_objective", "availability_objective"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be between 0 and 1, e.g. 0.99")


@dataclass(frozen=True)
class AlertParams:
    slo: Slo = field(default_factory=Slo)  # models not in `slos`
    slos: Mapping[str, Slo] = field(default_factory=dict)  # by `model` label: each model's own budget and bounds
    queue_backlog_requests: int = 20  # waiting requests per model version, sustained
    kv_cache_saturation: float = 0.9  # 5-minute average KV-cache usage
    preemptions_per_second: float = 0.05
    canary_ttft_ratio: float = 1.5  # canary p99 TTFT over the baseline's
    canary_error_ratio: float = 2.0  # canary error ratio over the baseline's
    runbook: str = "monitoring/runbook.md"  # URL or path of the runbook; sections by alert name
    # Tests only: divide every window and `for` by this, evaluate groups this often.
    time_scale: int = 1
    evaluation_interval: str | None = None


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration in its largest exact unit."""
    seconds = max(1, round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _number(value: float) -> str:
    return f"{round(value, 10):g}"


def _le_matcher(bound: float) -> str:
    """Selects a bucket as vLLM writes it ("1.0") and as Prometheus 3 normalises it ("1")."""
    written, normalised = floatToGoString(bound), _number(bound)
    return f'le="{written}"' if written == normalised else f'le=~"{written}|{normalised}"'


def _model_matcher(models: Sequence[str], negate: bool = False) -> str:
    """Selects these models by their `model` label, or with `negate` every other model; '' selects all."""
    if not models:
        return ""
    if len(models) == 1:
        return f"model{'!=' if negate else '='}{json.dumps(models[0])}"
    pattern = "|".join(re.sub(r"[\\.+*?()|\[\]{}^$]", r"\\\g<0>", m) for m in models)
    return f"model{'!~' if negate else '=~'}{json.dumps(pattern)}"


def _select(metric: str, *matchers: str) -> str:
    """`metric{a, b}` with the non-empty matchers, or the bare metric."""
    given = [m for m in matchers if m]
    return f"{metric}{{{', '.join(given)}}}" if given else metric


@dataclass(frozen=True)
class _SloGroup:
    """Models whose SLOs agree on what some rules depend on, with the SLO that stands for them."""

    slo: Slo
    models: tuple[str, ...]
    everyone_else: bool  # the default's group: every model not in `models`, which other groups hold

    @property
    def matcher(self) -> str:
        return _model_matcher(self.models, negate=self.everyone_else)


class _Builder:
    """Writes the rules for one set of parameters."""

    def __init__(self, params: AlertParams) -> None:
        self.p = params

    def window(self, seconds: int) -> str:
        """A window or `for` duration, shortened when testing."""
        return duration(seconds / self.p.time_scale)

    def alert(self, name: str, expr: str, for_seconds: int, severity: str, summary: str,
              **labels: str) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": name, "expr": expr}
        if for_seconds:
            rule["for"] = self.window(for_seconds)
        rule["labels"] = {"severity": severity, **labels}
        rule["annotations"] = {"summary": summary, "runbook_url": f"{self.p.runbook}#{name.lower()}"}
        return rule

    def slo_groups(self, key: Callable[[Slo], Hashable]) -> list[_SloGroup]:
        """`slos` grouped by `key`, the default's group first.

        Models whose key equals the default's join the default's group, which
        selects every model the other groups do not name, so a model that no
        one listed is still guarded; with one group there is no matcher and the
        rules read as with a single SLO.
        """
        named: dict[Hashable, list[str]] = {}
        for model, slo in sorted(self.p.slos.items()):
            if key(slo) != key(self.p.slo):
                named.setdefault(key(slo), []).append(model)
        others = tuple(m for models in named.values() for m in models)
        return [_SloGroup(self.p.slo, others, everyone_else=True)] + [
            _SloGroup(self.p.slos[models[0]], tuple(models), everyone_else=False) for models in named.values()]

    @staticmethod
    def per_model(groups: list[_SloGroup], text: Callable[[Slo], str]) -> str:
        """`text` of the alerting model's SLO: an annotation template that picks it by the `model` label."""
        default, *named = groups
        if not named:
            return text(default.slo)
        choices = "".join(
            f"{{{{ {'if' if i == 0 else 'else if'} eq $labels.model {' '.join(map(json.dumps, g.models))} }}}}"
            f"{text(g.slo)}" for i, g in enumerate(named))
        return f"{choices}{{{{ else }}}}{text(default.slo)}{{{{ end }}}}"

    def group(self, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        group: dict[str, Any] = {"name": name}
        if self.p.evaluation_interval:
            group["interval"] = self.p.evaluation_interval
        group["rules"] = rules
        return group

    # -- SLOs -------------------------------------------------------------

    def slo_group(self) -> dict[str, Any]:
        windows = sorted({w for _, _, long, short in BURN_WINDOWS for w in (long, short)})
        ttft, errors = "llmplane:vllm_ttft_slow:ratio_rate", "llmplane:vllm_request_errors:ratio_rate"
        bucket, count = f"{vm.TIME_TO_FIRST_TOKEN.name}_bucket", f"{vm.TIME_TO_FIRST_TOKEN.name}_count"
        # What counts as slow depends on the bound: one term per bound, each for its models.
        bounds = self.slo_groups(lambda slo: slo.ttft_seconds)
        rules: list[dict[str, Any]] = []
        for seconds in windows:
            w = self.window(seconds)
            rules.append({"record": ttft + duration(seconds), "expr": "or\n".join(
                f"1 - (\n"
                f"  sum by ({BY}) (rate({_select(bucket, _le_matcher(g.slo.ttft_seconds), g.matcher)}[{w}]))\n"
                f"  /\n"
                f"  sum by ({BY}) (rate({_select(count, g.matcher)}[{w}]))\n"
                f")\n" for g in bounds)})
        for seconds in windows + [CANARY_WINDOW]:
            rules.append({"record": errors + duration(seconds), "expr": self.error_ratio(seconds)})
        rules += self.burn_alerts(
            "ttft", ttft, key=lambda slo: (slo.ttft_seconds, slo.ttft_objective),
            budget=lambda slo: 1 - slo.ttft_objective,
            what=lambda slo: f"of first tokens slower than {_number(slo.ttft_seconds)}s "
                             f"(objective {slo.ttft_objective:.4g})")
        rules += self.burn_alerts(
            "availability", errors, key=lambda slo: slo.availability_objective,
            budget=lambda slo: 1 - slo.availability_objective,
            what=lambda slo: f"of requests failing (objective {slo.availability_objective:.4g})")
        return self.group("llmplane-vllm-slo", rules)

    def burn_alerts(self, slo_name: str, record: str, key: Callable[[Slo], Hashable],
                    budget: Callable[[Slo], float], what: Callable[[Slo], str]) -> list[dict[str, Any]]:
        """The page and the ticket of one SLO: each group of models with the same `key` burns its own budget.

        One rule per alert, its groups' branches joined by `or`, rather than one
        rule per group: rules with the same name and labels are duplicates to
        promtool's linter.
        """
        groups = self.slo_groups(key)
        title = "Ttft" if slo_name == "ttft" else "Error"

        def branch(group: _SloGroup, rate: float, long: int, short: int) -> str:
            over = f"> {_number(rate)} * {_number(budget(group.slo))}"
            return (f"(\n  {_select(record + duration(long), group.matcher)} {over}\n"
                    f"  and\n  {_select(record + duration(short), group.matcher)} {over}\n)")

        alerts: list[dict[str, Any]] = []
        for severity, pace in (("page", "fast"), ("ticket", "slowly")):
            branches = [branch(g, rate, long, short)
                        for g in groups for sev, rate, long, short in BURN_WINDOWS if sev == severity]
            alerts.append(self.alert(
                f"Vllm{title}BudgetBurn{'Fast' if severity == 'page' else 'Slow'}",
                "\nor\n".join(branches) + "\n",
                120 if severity == "page" else 900, severity,
                f"{{{{ $labels.model }}}} {{{{ $labels.version }}}} burns its {slo_name} error budget "
                f"{pace}: {{{{ $value | humanizePercentage }}}} {self.per_model(groups, what)}",
                slo=slo_name))
        return alerts

    def error_ratio(self, seconds: int) -> str:
        w = self.window(seconds)
        return (f"sum by ({BY}) (rate({vm.REQUEST_SUCCESS.name}{{finished_reason=\"error\"}}[{w}]))\n"
                f"/\n"
                f"sum by ({BY}) (rate({vm.REQUEST_SUCCESS.name}[{w}]))\n")

    # -- capacity ---------------------------------------------------------

    def capacity_group(self) -> dict[str, Any]:
        p = self.p
        return self.group("llmplane-vllm-capacity", [
            self.alert(
                "VllmQueueBacklog",
                f"sum by ({BY}) ({vm.NUM_REQUESTS_WAITING.name}) > {p.queue_backlog_requests}\n", 600, "ticket",
                "{{ $labels.model }} {{ $labels.version }} has {{ $value }} requests waiting for 10 minutes"),
            self.alert(
                "VllmKvCacheSaturated",
                f"max by ({BY}) (avg_over_time({vm.KV_CACHE_USAGE.name}[{self.window(300)}])) "
                f"> {_number(p.kv_cache_saturation)}\n", 600, "ticket",
                "{{ $labels.model }} {{ $labels.version }} keeps its KV cache "
                "{{ $value | humanizePercentage }} full"),
            self.alert(
                "VllmPreemptions",
                f"sum by ({BY}) (rate({vm.NUM_PREEMPTIONS.name}[{self.window(300)}])) "
                f"> {_number(p.preemptions_per_second)}\n", 600, "ticket",
                "{{ $labels.model }} {{ $labels.version }} preempts {{ printf \"%.2f\" $value }} requests per second"),
        ])

    # -- rollout ----------------------------------------------------------

    def rollout_group(self) -> dict[str, Any]:
        """The baseline is the version that serves most requests; others are canaries."""
        p, w = self.p, self.window(CANARY_WINDOW)
        suffix = duration(CANARY_WINDOW)
        requests, baseline = f"llmplane:vllm_requests:rate{suffix}", "llmplane:vllm_baseline_version"
        p99, errors = f"llmplane:vllm_ttft_p99:rate{suffix}", f"llmplane:vllm_request_errors:ratio_rate{suffix}"
        base_p99 = f"llmplane:vllm_baseline_ttft_p99:rate{suffix}"
        base_errors = f"llmplane:vllm_baseline_errors:ratio_rate{suffix}"
        canaries = f"unless on ({BY}) {baseline}"
        # Each model's canary is judged against its own SLO: one branch per
        # bound (or availability objective), each for its models.
        bounds = self.slo_groups(lambda slo: slo.ttft_seconds)
        floors = self.slo_groups(lambda slo: slo.availability_objective)
        return self.group("llmplane-vllm-rollout", [
            {"record": requests, "expr": f"sum by ({BY}) (rate({vm.REQUEST_SUCCESS.name}[{w}]))\n"},
            {"record": baseline, "expr": f"topk by (model) (1, {requests})\n"},
            {"record": p99, "expr": (
                f"histogram_quantile(0.99, sum by ({BY}, le) "
                f"(rate({vm.TIME_TO_FIRST_TOKEN.name}_bucket[{w}])))\n")},
            {"record": base_p99, "expr": f"max by (model) ({p99} and on ({BY}) {baseline})\n"},
            {"record": base_errors, "expr": f"max by (model) ({errors} and on ({BY}) {baseline})\n"},
            # Only against a baseline that meets the SLO: when all versions
            # are overloaded the capacity alerts speak, not this one.
            self.alert(
                "VllmCanaryWorseThanBaseline",
                "or\n".join(
                    f"({_select(p99, g.matcher)} {canaries})\n> on (model) group_left ()\n"
                    f"{_number(p.canary_ttft_ratio)} * "
                    f"({_select(base_p99, g.matcher)} < {_number(g.slo.ttft_seconds)})\n"
                    for g in bounds),
                300, "page",
                "Canary {{ $labels.model }} {{ $labels.version }} has a p99 TTFT of {{ printf \"%.2f\" $value }}s, "
                f"over {_number(p.canary_ttft_ratio)} times its baseline's", signal="ttft_p99"),
            self.alert(
                "VllmCanaryWorseThanBaseline",
                "or\n".join(
                    f"({_select(errors, g.matcher)} {canaries})\n> on (model) group_left ()\n"
                    f"clamp_min({_number(p.canary_error_ratio)} * {_select(base_errors, g.matcher)}, "
                    f"{_number(1 - g.slo.availability_objective)})\n"
                    for g in floors),
                300, "page",
                "Canary {{ $labels.model }} {{ $labels.version }} fails {{ $value | humanizePercentage }} "
                f"of requests, over {_number(p.canary_error_ratio)} times its baseline's", signal="error_ratio"),
        ])

    # -- replicas and GPUs ------------------------------------------------

    def fleet_group(self) -> dict[str, Any]:
        keys = "namespace, deployment"
        model_of_deployment = (
            f"max by ({keys}, {BY}) (\n"
            f"  label_replace(\n"
            f"    label_replace({vm.DEPLOYMENT_LABELS_INFO.name}{{label_llmplane_dev_model!=\"\"}},\n"
            f"      \"model\", \"$1\", \"label_llmplane_dev_model\", \"(.*)\"),\n"
            f"    \"version\", \"$1\", \"label_llmplane_dev_model_version\", \"(.*)\")\n"
            f")")
        return self.group("llmplane-fleet", [
            # Scaled to zero on purpose is fine: only desired-but-none-ready pages.
            self.alert(
                "VllmNoReadyReplicas",
                f"(\n  max by ({keys}) ({vm.DEPLOYMENT_SPEC_REPLICAS.name}) > 0\n"
                f"  unless on ({keys})\n"
                f"  max by ({keys}) ({vm.DEPLOYMENT_READY_REPLICAS.name}) > 0\n)\n"
                f"* on ({keys}) group_left ({BY})\n{model_of_deployment}\n",
                900, "page",
                "{{ $labels.model }} {{ $labels.version }} has none of its {{ $value }} replicas ready"),
            self.alert(
                "GpuXidErrors",
                f"max by ({BY}, Hostname, gpu, UUID) ({vm.GPU_XID_ERRORS.name}) > 0\n", 0, "page",
                "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} serving {{ $labels.model }} "
                "{{ $labels.version }} reported XID {{ $value }}"),
        ])


def prometheus_rule(params: AlertParams = AlertParams()) -> dict[str, Any]:
    """The PrometheusRule custom resource the Prometheus Operator loads."""
    builder = _Builder(params)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "llmplane-vllm",
            "labels": {
                "app.kubernetes.io/name": "llmplane-vllm-alerts",
                "app.kubernetes.io/component": "monitoring",
                "app.kubernetes.io/part-of": "llmplane",
                "app.kubernetes.io/managed-by": "pulumi",
            },
        },
        "spec": {"groups": [builder.slo_group(), builder.capacity_group(),
                            builder.rollout_group(), builder.fleet_group(),
                            builder.group("llmplane-tenant-cost", tenant_cost_rules())]},
    }


def rule_groups(rule: dict[str, Any]) -> dict[str, Any]:
    """A PrometheusRule's spec as a plain rule file for promtool and Prometheus."""
    if rule.get("kind") != "PrometheusRule":
        raise ValueError(f"expected a PrometheusRule, got kind {rule.get('kind')!r}")
    return {"groups": rule["spec"]["groups"]}


def load(path: Path = ALERTS_FILE) -> dict[str, Any]:
    """The alert rules file, parsed (libyaml's safe loader when present: the plan reads it on every run)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


class _Dumper(yaml.SafeDumper):
    """Multi-line PromQL as literal blocks, so the YAML reads like the query."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=120)


def render_alerts_file() -> str:
    return ("# Generated by `python -m llmplane.monitoring.rules --write` from monitoring/rules.py: edit there.\n"
            + dump(prometheus_rule()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmplane.monitoring.rules",
                                     description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"regenerate {ALERTS_FILE.name}")
    action.add_argument("--out", type=Path, help="write the plain rule groups of alerts.yaml here")
    parser.add_argument("--time-scale", type=int, help="with --out: build the rules with windows divided by this")
    parser.add_argument("--interval", help="with --out: group evaluation interval, e.g. 1s")
    args = parser.parse_args(argv)
    if args.write:
        ALERTS_FILE.write_text(render_alerts_file(), encoding="utf-8")
        return
    if args.time_scale or args.interval:
        rule = prometheus_rule(AlertParams(time_scale=args.time_scale or 1, evaluation_interval=args.interval))
    else:
        rule = load()
    args.out.write_text(dump(rule_groups(rule)), encoding="utf-8")


if __name__ == "__main__":
    main()
