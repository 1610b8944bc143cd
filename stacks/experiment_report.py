"""`llmplane experiment report`: an experiment of an environment judged on Prometheus's data, and the edit of the
environment file that takes its next step (or rolls it back), as Markdown for a pull request.

The statistics live in experiments/ (layer 4); the file edit lives here, where stacks/config_edit.py keeps the
file's comments and layout.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from llmplane.experiments import prometheus, report, shadow_report
from llmplane.facts.gpus import GPU_HOUR_USD
from llmplane.spec import load_spec
from llmplane.spec.models import Experiment, PlatformSpec

from .config_edit import set_value, unified_diff
from .environments import ENVIRONMENTS, environment_file, read_stack_config

_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class ReportError(ValueError):
    """The request cannot be answered (unknown model or experiment, bad window, no Prometheus); says what to do."""


@dataclass(frozen=True)
class Result:
    """The report's Markdown and the judgement behind it."""

    markdown: str
    evaluation: report.Evaluation | shadow_report.ShadowEvaluation
    """A shadow experiment's is a ShadowEvaluation: ready to canary or not, never a weight change."""
    diff: str | None
    edited: str | None = None
    """The environment file with the step taken and the verdict recorded, when the weights change."""

    @property
    def report_sha256(self) -> str:
        """The digest the recorded verdict carries: the report as posted on the pull request."""
        return hashlib.sha256(self.markdown.encode()).hexdigest()


DECISION = {"promote": "promote", "hold": "hold", "roll back": "rollback"}
"""The report's verdict as the spec records it (`experiments[].verdict.decision`)."""


def record_verdict(text: str, model: str, index: int, result_markdown: str, evaluation: report.Evaluation,
                   at: float) -> str:
    """The environment file with the experiment's verdict recorded: what the policy pack reads to allow the
    treatment's new weight (`platform-experiment-verdict`)."""
    weights = evaluation.weights_after or evaluation.weights_before
    verdict = {"decision": DECISION[evaluation.verdict],
               "weight": max(weights.get(t, 0) for t in evaluation.experiment.treatments),
               "reportSha256": hashlib.sha256(result_markdown.encode()).hexdigest(),
               "decidedAt": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(at))}
    return set_value(text, ("llmplane:models", model, "experiments", index, "verdict"), verdict)


def duration_seconds(text: str) -> float:
    """A Prometheus-style duration (`90s`, `5m`, `6h`, `14d`, `2w`) in seconds."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise ReportError(f"window {text!r}: give a duration such as 6h, 14d or 2w")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _experiment(spec: PlatformSpec, model: str, name: str | None) -> Experiment:
    if model not in spec.models:
        raise ReportError(f"environment '{spec.environment}' has no model '{model}' (it has {', '.join(spec.models)})")
    experiments = spec.models[model].experiments
    if not experiments:
        raise ReportError(f"model '{model}' in '{spec.environment}' runs no experiment")
    if name is None:
        if len(experiments) > 1:
            raise ReportError(f"model '{model}' runs {len(experiments)} experiments: name one with --experiment "
                              f"({', '.join(e.name for e in experiments)})")
        return experiments[0]
    chosen = next((e for e in experiments if e.name == name), None)
    if chosen is None:
        raise ReportError(f"model '{model}' has no experiment '{name}' (it has "
                          f"{', '.join(e.name for e in experiments)})")
    return chosen


def replica_hour_usd(spec: PlatformSpec, model: str) -> float:
    """What one replica costs per hour: its GPUs at the pool's price in the model's first cluster."""
    m = spec.models[model]
    cluster = spec.cluster(m.clusters[0]) if m.clusters else spec.clusters[0]
    pool = m.pool_in(cluster)
    price = (pool.gpu_hour_usd or GPU_HOUR_USD[pool.gpu_type]) if pool else 0.0
    return price * m.engine.tensor_parallel_size


def weight_edit(text: str, model: str, versions: list[str], weights: dict[str, int]) -> str:
    """The environment file with the model's versions at `weights`, comments and layout kept."""
    for index, version in enumerate(versions):
        if version in weights:
            text = set_value(text, ("llmplane:models", model, "versions", index, "weight"), weights[version])
    return text


def experiment_report(environment: str, model: str, prometheus_url: str | None, name: str | None = None,
                      window: str | None = None, environments: Path = ENVIRONMENTS,
                      at: float | None = None) -> Result:
    """Judge the experiment on Prometheus's data at `at` (now) over `window` (default: its maxDays) and write the
    pull request's Markdown, with the diff of the environment file when the weights change; a shadow experiment
    is judged on the shadow comparator's series (`shadow_report`) and never changes a weight."""
    path = environment_file(environment, environments)
    config = read_stack_config(environment, path)
    spec = load_spec(config.values, config.environment)
    experiment = _experiment(spec, model, name)
    url = prometheus_url or spec.observability.prometheus_url
    if not url:
        raise ReportError(f"environment '{environment}' names no observability.prometheusUrl: give --prometheus URL")
    seconds = duration_seconds(window) if window else experiment.max_days * 86_400.0
    if experiment.strategy == "shadow":
        judged = shadow_report.evaluate(prometheus.Client(url, at), experiment, model, seconds)
        return Result(shadow_report.markdown(judged, model), judged, None)
    deployed = spec.models[model].versions
    weights = {v.version: v.weight for v in deployed}
    evaluation = report.evaluate(prometheus.Client(url, at), experiment, model, weights, seconds,
                                 replica_hour_usd(spec, model))
    diff = after = None
    if evaluation.weights_after is not None:
        before = path.read_text()
        after = weight_edit(before, model, [v.version for v in deployed], evaluation.weights_after)
        diff = unified_diff(before, after, f"{path.parent.name}/{path.name}")
    markdown = report.markdown(evaluation, model, diff)
    if after is not None:
        index = spec.models[model].experiments.index(experiment)
        after = record_verdict(after, model, index, markdown, evaluation, time.time() if at is None else at)
    return Result(markdown, evaluation, diff, after)


def in_flight(environment: str, environments: Path = ENVIRONMENTS) -> list[tuple[str, str]]:
    """(model, experiment) of every experiment the environment runs, for the scheduled workflow."""
    config = read_stack_config(environment, environment_file(environment, environments))
    spec = load_spec(config.values, config.environment)
    return [(name, e.name) for name, model in spec.models.items() for e in model.experiments]
