"""Experiments in the spec: what is compared is deployed, steps rise, mandatory environments keep guardrails."""

from __future__ import annotations

from tests.test_spec_rules import expect

MODEL = "llama-3-70b"


def _experiment(config: dict) -> dict:
    return config["llmplane:models"][MODEL]["experiments"][0]


def test_prod_runs_its_engine_canary_as_an_experiment(env_config, load):
    [experiment] = load(env_config("prod"), "prod").models[MODEL].experiments
    assert (experiment.control, experiment.treatments, experiment.primary) == ("1.0.0", ["1.0.1"],
                                                                               "time_per_output_token")
    assert experiment.guardrails and experiment.steps == [10, 25, 50, 100]


def test_an_arm_must_be_deployed(env_config, load):
    config = env_config("prod")
    _experiment(config)["treatments"] = ["2.0.0"]
    problem = expect(load, config, "prod", f"models.{MODEL}.experiments.llama-70b-vllm-0-31",
                     "arm 2.0.0 is not deployed", "2.0.0")
    assert "1.0.0, 1.0.1, 1.1.0" in problem.fix


def test_a_treatment_has_the_role_its_strategy_moves_traffic_by(env_config, load):
    config = env_config("prod")
    _experiment(config)["treatments"] = ["1.1.0"]
    expect(load, config, "prod", f"models.{MODEL}.experiments.llama-70b-vllm-0-31.treatments",
           "a canary experiment moves traffic to canary versions, and 1.1.0 is shadow", "1.1.0")


def test_steps_must_rise(env_config, load):
    config = env_config("prod")
    _experiment(config)["steps"] = [10, 50, 25, 100]
    problem = expect(load, config, "prod", f"models.{MODEL}.experiments.llama-70b-vllm-0-31.steps",
                     "steps must rise", "10 -> 50 -> 25 -> 100")
    assert problem.fix == "order them: 10 -> 25 -> 50 -> 100"


def test_a_mandatory_environment_keeps_guardrails(env_config, load):
    config = env_config("prod")
    _experiment(config)["guardrails"] = []
    expect(load, config, "prod", f"models.{MODEL}.experiments.llama-70b-vllm-0-31.guardrails",
           "environment 'prod' is mandatory, and an experiment without guardrails cannot be rolled back by its "
           "metrics", "[]")


def test_an_advisory_environment_may_run_without_guardrails(env_config, load):
    config = env_config("prod")
    _experiment(config)["guardrails"] = []
    config["llmplane:policy"]["enforcement"] = "advisory"
    load(config, "prod")


def test_a_bandit_compares_only_the_same_weights(env_config, load):
    config = env_config("prod")
    experiment = _experiment(config)
    experiment.update(strategy="bandit", treatments=["1.0.1", "1.1.0"])
    expect(load, config, "prod", f"models.{MODEL}.experiments.llama-70b-vllm-0-31.strategy",
           "a bandit's arms must serve the same weights (they may differ only in engine release or generation "
           "defaults)", "1.0.0, 1.0.1, 1.1.0")
    experiment["treatments"] = ["1.0.1"]
    load(config, "prod")


def _raise_canary(weight: int, verdict: dict | None = None):
    def edit(values):
        model = values["llmplane:models"][MODEL]
        for version in model["versions"]:
            if version["version"] == "1.0.0":
                version["weight"] = 100 - weight
            if version["version"] == "1.0.1":
                version["weight"] = weight
        if verdict:
            model["experiments"][0]["verdict"] = verdict
    return edit


def _verdict_violations(plan) -> list[dict]:
    from llmplane.stacks.plan_policies import evaluate, mandatory

    return [v for v in mandatory(evaluate(plan)) if v["policy"] == "platform-experiment-verdict"]


def test_prod_refuses_raising_a_treatment_without_a_promote_verdict():
    from tests.planning import plan_of, plan_with

    assert _verdict_violations(plan_of("prod")) == []
    raised = _verdict_violations(plan_with("prod", _raise_canary(25)))
    assert len(raised) == 2, "the 70B's route in each AWS cluster"
    assert "version 1.0.1 takes 25 % in experiment llama-70b-vllm-0-31, but no verdict is recorded, which allows " \
           "the first step, 10 %" in raised[0]["message"]


def test_a_recorded_promote_verdict_allows_its_step_and_no_more():
    from tests.planning import plan_with

    verdict = {"decision": "promote", "weight": 25, "reportSha256": "c" * 64, "decidedAt": "2026-12-08T06:00Z"}
    assert _verdict_violations(plan_with("prod", _raise_canary(25, verdict))) == []
    assert len(_verdict_violations(plan_with("prod", _raise_canary(50, verdict)))) == 2
