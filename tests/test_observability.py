"""ObservabilityStack per cluster: pinned charts, our dashboards and alerts, private log buckets with retention."""

from __future__ import annotations

import json

import pytest
import yaml
from llmplane.monitoring import dashboards

from tests.planning import plan_of, plan_with

RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_every_cluster_gets_an_observability_stack(environment):
    plan = plan_of(environment)
    stacks = plan.of_type("llmplane:observability:ObservabilityStack")
    assert len(stacks) == len(plan.spec.clusters)


def test_observability_can_be_switched_off():
    assert plan_of("local").of_type("llmplane:observability:ObservabilityStack") == []
    plan = plan_with("dev", lambda values: values["llmplane:observability"].update(enabled=False))
    assert plan.of_type("llmplane:observability:ObservabilityStack") == []


def test_monitoring_charts_are_pinned():
    charts = {r.inputs["chart"]: r.inputs for r in plan_of("prod").of_type(RELEASE)}
    for chart in ("kube-prometheus-stack", "loki", "alloy", "dcgm-exporter"):
        assert charts[chart]["version"], chart
        assert charts[chart]["repositoryOpts"]["repo"].startswith("https://")


def test_prometheus_keeps_the_environments_retention():
    plan = plan_of("prod")
    release = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == "kube-prometheus-stack"][0]
    retention = release.inputs["values"]["prometheus"]["prometheusSpec"]["retention"]
    assert retention == f"{plan.spec.observability.metrics_retention_days}d"


def test_dashboards_and_alert_rules_are_provisioned_from_monitoring():
    plan = plan_of("prod")
    configmaps = [c for c in plan.of_type("kubernetes:core/v1:ConfigMap")
                  if c.inputs["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(configmaps) == len(plan.spec.clusters)
    board = json.loads(configmaps[0].inputs["data"]["llmplane-vllm.json"])
    assert board["uid"] == dashboards.build()["uid"]
    rules = plan.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert len(rules) == len(plan.spec.clusters)
    alerts = {r["alert"] for g in rules[0].inputs["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"VllmNoReadyReplicas", "GpuXidErrors"} & alerts


def test_aws_log_buckets_are_private_encrypted_versioned_and_expire():
    plan = plan_of("prod")
    buckets = {b.inputs["bucket"] for b in plan.of_type("aws:s3/bucket:Bucket")}
    assert buckets == {"llmplane-prod-aws-use1-logs", "llmplane-prod-aws-usw2-logs"}
    blocks = plan.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert len(blocks) == 2 and all(b.inputs["restrictPublicBuckets"] is True for b in blocks)
    encryption = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    assert len(plan.of_type(encryption)) == 2
    versioning = plan.of_type("aws:s3/bucketVersioning:BucketVersioning")
    assert {v.inputs["versioningConfiguration"]["status"] for v in versioning} == {"Enabled"}
    lifecycle = plan.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    # The gateway's access logs are in the same store and may ask for longer (prod: 365 days against 90).
    kept = max(plan.spec.observability.log_retention_days, plan.spec.gateway.access_log_retention_days)
    assert {r.inputs["rules"][0]["expiration"]["days"] for r in lifecycle} == {kept} == {365}


def test_gcp_log_bucket_enforces_private_access_and_retention():
    bucket = plan_of("prod").of_type("gcp:storage/bucket:Bucket")[0].inputs
    assert bucket["publicAccessPrevention"] == "enforced" and bucket["uniformBucketLevelAccess"] is True
    assert bucket["lifecycleRules"][0]["condition"]["age"] == plan_of("prod").spec.gateway.access_log_retention_days


def test_dcgm_exporter_tolerates_gpu_nodes():
    release = [r for r in plan_of("prod").of_type(RELEASE) if r.inputs["chart"] == "dcgm-exporter"][0]
    assert release.inputs["values"]["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_alerts_hold_each_model_the_cluster_serves_to_its_own_slo():
    def stricter_70b(values):
        values["llmplane:models"]["llama-3-70b"]["slo"] = {"ttftObjective": 0.95, "availability": 0.999}

    plan = plan_with("prod", stricter_70b)
    both = [c.name for c in plan.spec.clusters if all(c in plan.spec.clusters_of(m) for m in plan.spec.models.values())]
    assert both == ["aws-use1", "aws-usw2"]
    alerts = {r.name.removesuffix("-observability-alerts"): {
        a["alert"]: a for g in r.inputs["spec"]["groups"] for a in g["rules"] if "alert" in a}
        for r in plan.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")}
    for cluster in both:
        ttft, errors = alerts[cluster]["VllmTtftBudgetBurnFast"], alerts[cluster]["VllmErrorBudgetBurnFast"]
        # llama-3-70b: 95% fast first tokens, 99.9% available; llama-3-8b: the spec's defaults, 99% and 99.5%.
        assert 'ratio_rate1h{model="llama-3-70b"} > 14.4 * 0.05\n' in ttft["expr"]
        assert 'ratio_rate1h{model!="llama-3-70b"} > 14.4 * 0.01\n' in ttft["expr"]
        assert 'ratio_rate1h{model="llama-3-70b"} > 14.4 * 0.001\n' in errors["expr"]
        assert 'ratio_rate1h{model!="llama-3-70b"} > 14.4 * 0.005\n' in errors["expr"]
        assert "(objective 0.95)" in ttft["annotations"]["summary"]
    # A cluster that serves llama-3-8b alone holds it to its SLO, with no other model's branches.
    alone = alerts["gcp-usc1"]["VllmTtftBudgetBurnFast"]["expr"]
    assert "llama-3-70b" not in alone and "ratio_rate1h > 14.4 * 0.01\n" in alone


def test_loki_records_tenant_usage_from_the_gateway_access_lines_into_prometheus():
    plan = plan_of("prod")
    [rules] = [r for r in plan.of_type("kubernetes:core/v1:ConfigMap")
               if r.inputs["metadata"]["name"] == "llmplane-loki-rules" and "aws-use1" in r.urn]
    groups = yaml.safe_load(rules.inputs["data"]["tenant-usage.yaml"])["groups"]
    assert {r["record"] for g in groups for r in g["rules"]} == {
        "llmplane:gateway_tokens:sum1m", "llmplane:gateway_requests:count1m"}
    [loki] = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release")
              if r.inputs["chart"] == "loki" and "aws-use1" in r.urn]
    ruler = loki.inputs["values"]["loki"]["rulerConfig"]
    assert ruler["remote_write"]["clients"]["prometheus"]["url"].endswith(":9092/api/v1/write")  # the guard's
    assert {"name": "rules", "mountPath": "/etc/loki/rules/fake", "readOnly": True} in loki.inputs["values"][
        "singleBinary"]["extraVolumeMounts"]
    assert loki.inputs["values"]["loki"]["auth_enabled"] is False
    [stack] = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release")
               if r.inputs["chart"] == "kube-prometheus-stack" and "aws-use1" in r.urn]
    assert stack.inputs["values"]["prometheus"]["prometheusSpec"]["enableRemoteWriteReceiver"] is True


def test_the_ruler_reads_fields_the_gateway_writes_from_the_namespace_its_proxies_run_in():
    from llmplane.components.gateway.envoy_gateway import ACCESS_LOG_FIELDS
    from llmplane.monitoring import tenant_usage

    assert tenant_usage.ACCESS_LINES.startswith('{namespace="llmplane-gateway"}')
    gateways = [g for g in plan_of("prod").of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")]
    assert {g.inputs["metadata"]["namespace"] for g in gateways} == {"llmplane-gateway"}
    assert ACCESS_LOG_FIELDS["log"] == tenant_usage.ACCESS_LOG_KIND
    assert {"tenant", "model", "total_tokens", "status"} <= set(ACCESS_LOG_FIELDS)
