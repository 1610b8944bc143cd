"""Rules for experiments: what is compared must be deployed, steps only go up, and a mandatory environment never
runs an experiment without guardrails."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .errors import Problem
from .models import Experiment, Model, PlatformSpec

ROLE_OF_STRATEGY = {"canary": "canary", "ab": "ab", "shadow": "shadow"}
"""The deployed role a treatment has under each strategy (a bandit's arms may have any serving role)."""


def _arms(experiment: Experiment) -> list[str]:
    return [experiment.control, *experiment.treatments]


def experiment_arms(spec: PlatformSpec) -> Iterable[Problem]:
    """Every arm is a deployed version of the model, listed once; a treatment has the role its strategy moves
    traffic by (canary weights, A/B pins, shadow mirrors)."""
    for name, model in spec.models.items():
        deployed = {v.version: v for v in model.versions}
        for experiment in model.experiments:
            path = f"models.{name}.experiments.{experiment.name}"
            for arm in _arms(experiment):
                if arm not in deployed:
                    yield Problem(path, f"arm {arm} is not deployed", arm,
                                  f"deploy {arm} in models.{name}.versions, or compare deployed versions "
                                  f"({', '.join(deployed)})")
            for arm, count in Counter(_arms(experiment)).items():
                if count > 1:
                    yield Problem(path, f"version {arm} is an arm twice", arm, "list each version once")
            role = ROLE_OF_STRATEGY.get(experiment.strategy)
            for arm in experiment.treatments:
                if role and arm in deployed and deployed[arm].role != role:
                    yield Problem(f"{path}.treatments", f"a {experiment.strategy} experiment moves traffic to "
                                  f"{role} versions, and {arm} is {deployed[arm].role}", arm,
                                  f"give {arm} role: {role}, or pick the strategy that matches its role")
            if experiment.strategy == "bandit":
                yield from _bandit_arms(path, model, experiment)


def _bandit_arms(path: str, model: Model, experiment: Experiment) -> Iterable[Problem]:
    """A bandit moves weight between arms by their reward, which is fair only when the arms are the same model:
    the same weights, differing in engine release or generation defaults."""
    arms = [a for a in _arms(experiment) if a in model.catalog]
    weights = {model.artifact(a).sha256 for a in arms}
    if len(weights) > 1:
        yield Problem(f"{path}.strategy", "a bandit's arms must serve the same weights (they may differ only in "
                      "engine release or generation defaults)", ", ".join(arms),
                      "use weightsOf for the treatments, or strategy: canary for versions with other weights")


def experiment_steps(spec: PlatformSpec) -> Iterable[Problem]:
    """Weight steps rise, each a percent, so every pull request moves the treatment forward."""
    for name, model in spec.models.items():
        for experiment in model.experiments:
            steps = experiment.steps
            path = f"models.{name}.experiments.{experiment.name}.steps"
            shown = " -> ".join(map(str, steps))
            if experiment.strategy == "shadow":
                continue
            if not steps:
                yield Problem(path, "no weight steps", "[]", "give rising steps, e.g. [10, 25, 50, 100]")
            elif any(not 1 <= s <= 100 for s in steps):
                yield Problem(path, "a step is not a percent from 1 to 100", shown, "use steps from 1 to 100")
            elif any(b <= a for a, b in zip(steps, steps[1:])):
                rising = " -> ".join(map(str, sorted(set(steps))))
                yield Problem(path, "steps must rise", shown, f"order them: {rising}")


def experiment_guardrails(spec: PlatformSpec) -> Iterable[Problem]:
    """In a mandatory environment every experiment has a guardrail: the metric whose breach rolls it back."""
    names = Counter(e.name for m in spec.models.values() for e in m.experiments)
    for name, count in names.items():
        if count > 1:
            yield Problem("models", f"experiment name '{name}' is used {count} times", name,
                          "give every experiment of the environment its own name")
    if spec.policy.enforcement != "mandatory":
        return
    for name, model in spec.models.items():
        for experiment in model.experiments:
            if not experiment.guardrails:
                yield Problem(f"models.{name}.experiments.{experiment.name}.guardrails",
                              f"environment '{spec.environment}' is mandatory, and an experiment without guardrails "
                              "cannot be rolled back by its metrics", "[]",
                              "add guardrails, e.g. [error_rate, ttft]")


EXPERIMENT_RULES = (experiment_arms, experiment_steps, experiment_guardrails)
