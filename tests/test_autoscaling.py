"""Each model version has exactly one autoscaler, carrying the thresholds the capacity planner replays."""

from __future__ import annotations

import pytest

from tests.planning import model_servers, plan_of, plan_with

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def model_scalers(plan) -> list:
    """The model versions' ScaledObjects (not the warm-headroom windows')."""
    return [s for s in plan.of_type(SCALED_OBJECT)
            if s.inputs["metadata"]["labels"].get("app.kubernetes.io/component") == "autoscaler"]


def _owner(resource) -> str:
    """`<cluster>-<model>-<version>`: the Pulumi name without its kind suffix."""
    return resource.name.rsplit("-", 1)[0]


@pytest.mark.parametrize("environment", ["local", "dev", "staging", "prod"])
def test_exactly_one_autoscaler_per_deployment(environment):
    plan = plan_of(environment)
    deployments = model_servers(plan)
    scalers = model_scalers(plan) + plan.of_type(HPA)
    owners = [_owner(s) for s in scalers]
    assert sorted(owners) == sorted(_owner(d) for d in deployments), "one autoscaler for each Deployment"
    for scaler in scalers:
        deployment = next(d for d in deployments if _owner(d) == _owner(scaler))
        assert scaler.inputs["spec"]["scaleTargetRef"]["name"] == deployment.inputs["metadata"]["name"]


@pytest.mark.parametrize("environment", ["local", "dev", "staging", "prod"])
def test_scaled_objects_carry_the_planners_thresholds(environment):
    plan = plan_of(environment)
    for scaler in model_scalers(plan):
        labels = scaler.inputs["metadata"]["labels"]
        name, version = labels["llmplane.dev/model"], labels["llmplane.dev/model-version"]
        policy = plan.spec.autoscaling_policy(name, version)
        spec = scaler.inputs["spec"]
        queue, kv, *held = spec["triggers"]
        # A version that may sit at zero also wakes on requests the gateway holds for it (KEDA's HTTP add-on).
        assert [t["type"] for t in held] == (["external-push"] if policy.scale_to_zero else [])
        assert queue["metadata"]["query"] == policy.queue_query
        assert float(queue["metadata"]["threshold"]) == policy.queue_per_replica
        assert queue["metricType"] == "AverageValue"
        assert kv["metadata"]["query"] == policy.kv_cache_query
        assert float(kv["metadata"]["threshold"]) == policy.kv_cache_target
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (policy.hpa_min_replicas, policy.max_replicas)
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == policy.scale_up_seconds
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == policy.scale_down_seconds
        assert spec["pollingInterval"] == policy.polling_seconds


def test_dev_scales_to_zero_with_an_activation_threshold():
    plan = plan_of("dev")
    spec = model_scalers(plan)[0].inputs["spec"]
    assert spec["minReplicaCount"] == 0
    assert float(spec["triggers"][0]["metadata"]["activationThreshold"]) == plan.spec.autoscaling.activation_queue
    assert spec["cooldownPeriod"] == plan.spec.autoscaling.cooldown_seconds


def test_prod_never_scales_below_its_minimum():
    for scaler in model_scalers(plan_of("prod")):
        assert scaler.inputs["spec"]["minReplicaCount"] >= 1


def test_scale_up_is_faster_than_scale_down():
    autoscaling = plan_of("prod").spec.autoscaling
    assert autoscaling.scale_up_seconds < autoscaling.scale_down_seconds


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler():
    for deployment in model_servers(plan_of("prod")):
        assert "replicas" not in deployment.inputs["spec"]


def test_without_keda_an_hpa_on_custom_metrics_scales_each_version():
    plan = plan_with("staging", lambda values: values.setdefault("llmplane:autoscaling", {}).update(keda=False))
    assert model_scalers(plan) == []
    hpas = plan.of_type(HPA)
    assert len(hpas) == len(model_servers(plan))
    metrics = {m["type"] for m in hpas[0].inputs["spec"]["metrics"]}
    assert metrics == {"Pods", "External"}
    assert not [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "keda"]


def test_keda_is_installed_in_every_deployed_cluster():
    plan = plan_of("prod")
    kedas = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "keda"]
    assert len(kedas) == len(plan.spec.clusters)
