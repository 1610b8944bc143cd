"""ObservabilityStack: metrics, logs, GPU telemetry, dashboards and SLO alerts for one cluster."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml
from llmplane.components.aws_trust import POD_IDENTITY, trust_policy
from llmplane.components.clusters.base import AwsNetwork, ClusterNetwork, GcpNetwork, cloud_of
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of
from llmplane.components.serving.vllm_service import GPU_TAINT_KEY, MONITORING_NAMESPACE
from llmplane.monitoring import dashboards, tenant_usage
from llmplane.monitoring.rules import AlertParams, Slo, prometheus_rule

from .boundary import (
    LOKI_HTTP_PORT,
    PROMETHEUS_WRITE_PORT,
    guard_configmap,
    monitoring_policies,
    prometheus_guard_values,
)
from .charts import ALLOY, DCGM_EXPORTER, KUBE_PROMETHEUS_STACK, LOKI

LOKI_SERVICE_ACCOUNT = "loki"
"""Loki's ServiceAccount (the chart's fullname, fixed by `fullnameOverride`)."""
PROMETHEUS_WRITE_URL = (f"http://kube-prometheus-stack-prometheus.{MONITORING_NAMESPACE}.svc:{PROMETHEUS_WRITE_PORT}"
                        "/api/v1/write")
"""Prometheus' remote-write receiver, behind its guard's write port: Loki's ruler writes here, and only it may."""
LOKI_PUSH_URL = f"http://loki.{MONITORING_NAMESPACE}.svc:{LOKI_HTTP_PORT}/loki/api/v1/push"
"""Loki's push API on its own Service: Alloy pushes here, and only it may (the gateway refuses pushes)."""
GRAFANA_ADMIN_SECRET = "grafana-admin"
"""Secret holding Grafana's admin user and its generated password (chart value `admin.existingSecret`)."""
LOKI_GATEWAY_NO_PUSH = r"if ($uri ~ ^/(loki/api/v1/push|api/prom/push|otlp/v1/logs)$) { return 403; }"
"""nginx, inside every location of the Loki gateway (chart value `gateway.nginxConfig.locationSnippet`, 6.46.0
templates/_helpers.tpl): the gateway serves reads (Grafana) and refuses Loki's push paths, which it would otherwise
relay (`location = /loki/api/v1/push`). `$uri` is nginx's decoded, slash-merged path."""


@dataclass(frozen=True)
class ObservabilityArgs:
    """The cluster, the environment's observability section and the SLOs the alerts guard."""

    cluster_name: str
    """The cluster the stack runs in (names the log bucket)."""
    region: str
    """The cluster's region (the log bucket's location)."""
    slos: Mapping[str, Slo]
    """SLO of each model the cluster serves, by name: its burn-rate and canary alerts use its own."""
    default_slo: Slo
    """SLO of models not in `slos`."""
    environment: str
    """Environment name (bucket names, labels)."""
    tags: dict[str, str]
    """Cloud tags / labels for buckets."""
    network: ClusterNetwork | None = None
    """The cluster's cloud handles: Loki keeps logs in S3 (AwsNetwork), GCS (GcpNetwork) or, with none (on-prem),
    on the cluster's disks."""
    metrics_retention_days: int = 15
    """How long Prometheus keeps metrics."""
    log_retention_days: int = 30
    """How long Loki keeps logs (the bucket's lifecycle too)."""
    remote_write_url: str | None = None
    """Global metrics store Prometheus remote-writes to, if any."""
    protect: bool = False
    """Protect the log buckets."""


class ObservabilityStack(pulumi.ComponentResource):
    """kube-prometheus-stack (Prometheus, Alertmanager, Grafana with our dashboards), Loki on object storage in
    the cloud, Alloy shipping pod logs, the DCGM exporter on GPU nodes, and llmplane's PrometheusRule."""

    namespace: pulumi.Output[str]
    """The monitoring namespace (vLLM NetworkPolicies admit it)."""
    log_bucket: pulumi.Output[str]
    """Loki's bucket, or '' on-prem (filesystem)."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:observability:ObservabilityStack", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="observability", instance=MONITORING_NAMESPACE, component="monitoring")
        ns = k8s.core.v1.Namespace(f"{name}-namespace", metadata={"name": MONITORING_NAMESPACE, "labels": labels},
                                   opts=child)
        bucket, loki_storage = self._log_storage(name, args, opts)
        monitoring_policies(name, ns.metadata.name, labels, cloud_of(args.network), child)
        guard = guard_configmap(f"{name}-prometheus-write-guard", ns.metadata.name, labels, child)
        grafana_admin = self._grafana_admin(name, ns.metadata.name, labels, child)
        guarded = prometheus_guard_values()
        prometheus_values = {
            "fullnameOverride": "kube-prometheus-stack",  # the Service name PROMETHEUS_URL (KEDA) holds
            "prometheus": {**guarded, "prometheusSpec": {
                **guarded["prometheusSpec"],
                "retention": f"{args.metrics_retention_days}d",
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "enableRemoteWriteReceiver": True,  # Loki's ruler writes the tenant usage series here
                "remoteWrite": [{"url": args.remote_write_url}] if args.remote_write_url else [],
            }},
            "kube-state-metrics": {"metricLabelsAllowlist": [
                "deployments=[llmplane.dev/model,llmplane.dev/model-version]"]},
            "grafana": {
                "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user",
                          "passwordKey": "admin-password"},
                "grafana.ini": {"auth.anonymous": {"enabled": False}},
                "service": {"type": "ClusterIP"},
                "ingress": {"enabled": False},
                "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard"}},
                "additionalDataSources": [{"name": "Loki", "type": "loki", "uid": "loki",
                                           "url": f"http://loki-gateway.{MONITORING_NAMESPACE}.svc"}],
            },
        }
        operator = KUBE_PROMETHEUS_STACK.release(f"{name}-kube-prometheus-stack", ns.metadata.name,
                                                 prometheus_values,
                                                 children_of(self, opts, depends_on=[guard, grafana_admin]))
        rules = k8s.core.v1.ConfigMap(
            f"{name}-loki-rules",
            metadata={"name": LOKI_RULES_CONFIGMAP, "namespace": ns.metadata.name, "labels": labels},
            data={"tenant-usage.yaml": yaml.safe_dump(tenant_usage.loki_rule_groups(), sort_keys=False)},
            opts=child,
        )
        LOKI.release(f"{name}-loki", ns.metadata.name, loki_storage,
                     children_of(self, opts, depends_on=[rules]))
        ALLOY.release(f"{name}-alloy", ns.metadata.name, {"alloy": {"configMap": {"content": _alloy_config()}}}, child)
        DCGM_EXPORTER.release(f"{name}-dcgm-exporter", ns.metadata.name, {
            "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "serviceMonitor": {"enabled": True},
        }, child)
        k8s.core.v1.ConfigMap(
            f"{name}-dashboards",
            metadata={"name": "llmplane-dashboards", "namespace": ns.metadata.name,
                      "labels": {**labels, "grafana_dashboard": "1"}},
            data={"llmplane-vllm.json": json.dumps(dashboards.build(), sort_keys=True)},
            opts=child,
        )
        rule = prometheus_rule(AlertParams(slo=args.default_slo, slos=args.slos))
        k8s.apiextensions.CustomResource(
            f"{name}-alerts",
            api_version=rule["apiVersion"],
            kind=rule["kind"],
            metadata={**rule["metadata"], "namespace": ns.metadata.name, "labels": {**labels,
                                                                                    **rule["metadata"]["labels"]}},
            spec=rule["spec"],
            opts=children_of(self, opts, depends_on=[operator]),  # the chart brings the CRD
        )
        self.namespace = ns.metadata.name
        self.log_bucket = pulumi.Output.from_input(bucket)
        self.register_outputs({"namespace": self.namespace, "log_bucket": self.log_bucket})

    def _grafana_admin(self, name: str, namespace: pulumi.Input[str], labels: dict[str, str],
                       child: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """Grafana's admin credential: a generated password, secret in the state and the plan, in the Secret the
        chart reads (never in the chart's values, which Helm keeps in clear in its release record)."""
        password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=child)
        return k8s.core.v1.Secret(f"{name}-grafana-admin", metadata={
            "name": GRAFANA_ADMIN_SECRET, "namespace": namespace, "labels": labels}, type="Opaque",
            string_data={"admin-user": "admin", "admin-password": pulumi.Output.secret(password.result)},
            opts=child)

    def _log_storage(self, name: str, args: ObservabilityArgs,
                     opts: pulumi.ResourceOptions | None) -> tuple[pulumi.Input[str], dict]:
        """A private, encrypted, versioned bucket with the spec's retention (cloud), or local disks (on-prem)."""
        days, network = args.log_retention_days, args.network
        bucket_name = f"llmplane-{args.environment}-{args.cluster_name}-logs"
        single = _single_binary_loki(days)
        if isinstance(network, AwsNetwork):
            keep = children_of(self, opts, provider=network.provider, protect=args.protect)
            on_aws = children_of(self, opts, provider=network.provider)
            bucket = aws.s3.Bucket(f"{name}-logs", bucket=bucket_name, tags=args.tags, opts=keep)
            aws.s3.BucketPublicAccessBlock(f"{name}-logs-private", bucket=bucket.id, block_public_acls=True,
                                           block_public_policy=True, ignore_public_acls=True,
                                           restrict_public_buckets=True, opts=on_aws)
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-logs-encryption", bucket=bucket.id,
                rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"},
                        "bucket_key_enabled": True}], opts=on_aws)
            aws.s3.BucketVersioning(f"{name}-logs-versioning", bucket=bucket.id,
                                    versioning_configuration={"status": "Enabled"}, opts=on_aws)
            aws.s3.BucketLifecycleConfiguration(
                f"{name}-logs-retention", bucket=bucket.id,
                rules=[{"id": "retention", "status": "Enabled", "filter": {},
                        "expiration": {"days": days}, "noncurrent_version_expiration": {"noncurrent_days": 7}}],
                opts=on_aws)
            role = aws.iam.Role(f"{name}-loki", assume_role_policy=trust_policy(POD_IDENTITY),
                tags=args.tags, opts=on_aws)
            aws.iam.RolePolicy(f"{name}-loki", role=role.id, policy=bucket.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
                    "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"],
                    "Resource": [arn, f"{arn}/*"]}]})), opts=on_aws)
            aws.eks.PodIdentityAssociation(f"{name}-loki", cluster_name=network.eks_cluster_name,
                                           namespace=MONITORING_NAMESPACE, service_account=LOKI_SERVICE_ACCOUNT,
                                           role_arn=role.arn, tags=args.tags, opts=on_aws)
            storage = {"type": "s3", "bucketNames": {"chunks": bucket_name, "ruler": bucket_name},
                       "s3": {"region": args.region}}
            return bucket.bucket, {**single, "loki": {**single["loki"], "storage": storage}}
        if isinstance(network, GcpNetwork):
            bucket = gcp.storage.Bucket(
                f"{name}-logs", name=bucket_name, location=args.region, uniform_bucket_level_access=True,
                public_access_prevention="enforced", versioning={"enabled": True},
                lifecycle_rules=[{"action": {"type": "Delete"}, "condition": {"age": days}}],
                labels={key.replace("-", "_"): value for key, value in args.tags.items()},
                opts=children_of(self, opts, protect=args.protect))
            storage = {"type": "gcs", "bucketNames": {"chunks": bucket_name, "ruler": bucket_name}}
            return bucket.name, {**single, "loki": {**single["loki"], "storage": storage}}
        return "", {**single, "loki": {**single["loki"], "storage": {"type": "filesystem"}}}


LOKI_RULES_CONFIGMAP = "llmplane-loki-rules"
"""ConfigMap holding the Loki ruler's recording rules (monitoring/tenant_usage.py)."""


def _single_binary_loki(retention_days: int) -> dict:
    """Loki chart values every cluster shares: one binary, the spec's retention, authentication off (one tenant,
    `fake`: Alloy pushes without a tenant header), and the ruler inside the binary reading its rules from
    `LOKI_RULES_CONFIGMAP` (mounted as that tenant's rules) and remote-writing their series to the cluster's
    Prometheus. Authentication is off because no client outside the monitoring namespace reaches Loki: pushes come
    only from Alloy, reads only from Grafana, by the namespace's NetworkPolicies."""
    return {
        "deploymentMode": "SingleBinary",
        "fullnameOverride": "loki",  # Services `loki` and `loki-gateway`, ServiceAccount LOKI_SERVICE_ACCOUNT
        "lokiCanary": {"enabled": False},  # no canary DaemonSet pushing and querying from every node
        "gateway": {"nginxConfig": {"locationSnippet": LOKI_GATEWAY_NO_PUSH}},
        "loki": {
            "auth_enabled": False,
            "limits_config": {"retention_period": f"{retention_days * 24}h"},
            "compactor": {"retention_enabled": True},
            "rulerConfig": {
                "storage": {"type": "local", "local": {"directory": "/etc/loki/rules"}},
                "rule_path": "/var/loki/rules-temp",
                "wal": {"dir": "/var/loki/ruler-wal"},
                "remote_write": {"enabled": True, "clients": {
                    "prometheus": {"url": PROMETHEUS_WRITE_URL}}},
            },
        },
        "singleBinary": {
            "extraVolumes": [{"name": "rules", "configMap": {"name": LOKI_RULES_CONFIGMAP}}],
            "extraVolumeMounts": [{"name": "rules", "mountPath": "/etc/loki/rules/fake", "readOnly": True}],
        },
    }


def alloy_stream_labels() -> set[str]:
    """The labels our Alloy configuration gives every log stream (what LogQL queries can select on)."""
    return set(re.findall(r'target_label = "([a-z_]+)"', _alloy_config()))


def _alloy_config() -> str:
    """Alloy: tail every pod's logs and push them to Loki with namespace, pod and model labels."""
    return "\n".join([
        'discovery.kubernetes "pods" { role = "pod" }',
        'discovery.relabel "pods" {',
        "  targets = discovery.kubernetes.pods.targets",
        '  rule { source_labels = ["__meta_kubernetes_namespace"] target_label = "namespace" }',
        '  rule { source_labels = ["__meta_kubernetes_pod_name"] target_label = "pod" }',
        '  rule { source_labels = ["__meta_kubernetes_pod_label_llmplane_dev_model"] target_label = "model" }',
        '  rule { source_labels = ["__meta_kubernetes_pod_label_llmplane_dev_model_version"] '
        'target_label = "version" }',
        "}",
        'loki.source.kubernetes "pods" {',
        "  targets = discovery.relabel.pods.output",
        "  forward_to = [loki.write.default.receiver]",
        "}",
        'loki.write "default" {',
        f'  endpoint {{ url = "{LOKI_PUSH_URL}" }}',
        "}",
    ])
