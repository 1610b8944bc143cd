"""The policy pack as a spec: every policy with a compliant and a violating case, every shipped environment free of
mandatory violations, deliberately broken environments caught by the expected policy, and the CrossGuard pack
built from (and run with) the very same rules.

Synthetic resources are wire-form props (camelCase), exactly what the offline plan records and CrossGuard
hands to a policy.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from llmplane.policies import platform
from llmplane.policies.base import SECRET, UNKNOWN, Context, ResourceView
from llmplane.policies.config import enforcement_levels, pack_config
from llmplane.policies.pack import build_policies, context, plain
from llmplane.policies.rules import BY_NAME, RULES
from llmplane.spec import SpecError
from llmplane.spec.models import Policy
from llmplane.stacks.cli import main
from llmplane.stacks.environments import ENVIRONMENTS, PROJECT_ROOT
from llmplane.stacks.plan import Plan, PlannedResource
from llmplane.stacks.plan_policies import evaluate, mandatory, verdict
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from tests.planning import plan_of, plan_with

ENVIRONMENTS_SHIPPED = ["local", "dev", "staging", "prod"]

# ---------------------------------------------------------------------------------------------- synthetic resources

IMAGE = "docker.io/vllm/vllm-openai:v0.11.0@sha256:" + "a" * 64
BASE_LABELS = {
    "app.kubernetes.io/name": "vllm",
    "app.kubernetes.io/instance": "llama-v1-0-0",
    "app.kubernetes.io/component": "model-server",
    "app.kubernetes.io/part-of": "llmplane",
    "app.kubernetes.io/managed-by": "pulumi",
}
VLLM_LABELS = {**BASE_LABELS, "llmplane.dev/model": "llama", "llmplane.dev/model-version": "1.0.0"}
SELECTOR = {"app.kubernetes.io/instance": "llama-v1-0-0", "llmplane.dev/model": "llama",
            "llmplane.dev/model-version": "1.0.0"}
TAGS = {"environment": "prod", "cost-center": "ml", "owner": "platform-team", "managed-by": "pulumi-llmplane"}
GCP_LABELS = {"environment": "prod", "cost_center": "ml", "owner": "platform-team", "managed_by": "pulumi-llmplane"}
DELETE = object()


def view(type_: str, props: dict[str, Any], name: str = "r", scope: str | None = "c1", **extra: Any) -> ResourceView:
    return ResourceView(type=type_, urn=f"urn:pulumi:prod::llmplane::{type_}::{name}", props=props, name=name,
                        scope=scope, **extra)


def k8s(type_: str, name: str, spec: dict | None = None, labels: dict | None = None, namespace: str | None = "llmplane",
        scope: str | None = "c1", **top: Any) -> ResourceView:
    group_version, kind = type_.split(":")[1], type_.split(":")[2]
    api = group_version.removeprefix("core/")
    meta: dict[str, Any] = {"name": name, "labels": dict(VLLM_LABELS if labels is None else labels)}
    if namespace:
        meta["namespace"] = namespace
    props = {"apiVersion": api, "kind": kind, "metadata": meta, **({"spec": spec} if spec is not None else {}), **top}
    return view(type_, props, name=f"{scope}-{name}-{kind.lower()}", scope=scope)


def patched(resource: ResourceView, *edits: tuple[tuple, Any], **replace: Any) -> ResourceView:
    """A copy with values at paths set (or removed with DELETE)."""
    props = copy.deepcopy(dict(resource.props))
    for path, value in edits:
        node = props
        for step in path[:-1]:
            node = node[step]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return dataclasses.replace(resource, props=props, **replace)


def vllm_container() -> dict[str, Any]:
    resources = {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"}
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "name": "vllm",
        "image": IMAGE,
        "env": [
            {"name": "LLMPLANE_MODEL_SHA256", "value": "b" * 64},
            {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "vllm-api-key", "key": "api-key"}}},
        ],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "startupProbe": {**probe, "failureThreshold": 36},
        "readinessProbe": probe,
        "livenessProbe": probe,
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
                            "capabilities": {"drop": ["ALL"]}},
    }


DEPLOY = k8s("kubernetes:apps/v1:Deployment", "llama-v1-0-0", spec={
    "replicas": 1,
    "selector": {"matchLabels": SELECTOR},
    "template": {
        "metadata": {"labels": dict(VLLM_LABELS)},
        "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}, "containers": [vllm_container()]},
    },
})
C = ("spec", "template", "spec", "containers", 0)
POD = ("spec", "template", "spec")
CPU_DEPLOY = patched(
    DEPLOY,
    (C + ("resources",), {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}),
    (C + ("name",), "proxy"), (C + ("image",), "envoyproxy/envoy@sha256:" + "c" * 64), (C + ("startupProbe",), DELETE),
)
SERVICE = k8s("kubernetes:core/v1:Service", "llama-v1-0-0", spec={
    "type": "ClusterIP", "selector": SELECTOR, "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]})
PDB = k8s("kubernetes:policy/v1:PodDisruptionBudget", "llama-v1-0-0",
          spec={"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}})
NETPOL = k8s("kubernetes:networking.k8s.io/v1:NetworkPolicy", "llama-v1-0-0",
             spec={"podSelector": {"matchLabels": SELECTOR}, "policyTypes": ["Ingress"]})
DEFAULT_DENY = k8s("kubernetes:networking.k8s.io/v1:NetworkPolicy", "default-deny-ingress", labels=BASE_LABELS,
                   spec={"podSelector": {}, "policyTypes": ["Ingress"]})
MONITOR = k8s("kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "llama-v1-0-0",
              spec={"selector": {"matchLabels": SELECTOR}, "endpoints": [{"port": "http", "path": "/metrics"}]})
ALERTS = k8s("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "llmplane-vllm", labels=BASE_LABELS,
             namespace="monitoring", spec={"groups": [{"name": "vllm", "rules": [
                 {"record": "llmplane:queue", "expr": "sum by (model) (vllm:num_requests_waiting)"},
                 {"alert": "VllmQueueBacklog", "expr": "llmplane:queue > 8", "for": "10m"},
                 {"alert": "VllmKvCacheSaturated", "expr": "max by (model) (vllm:kv_cache_usage_perc) > 0.95"},
             ]}]})
NAMESPACE = k8s("kubernetes:core/v1:Namespace", "llmplane", labels=BASE_LABELS, namespace=None)
API_KEY = k8s("kubernetes:core/v1:Secret", "vllm-api-key", labels=BASE_LABELS, type="Opaque", stringData=SECRET)
ROUTE = k8s("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "llama", spec={"rules": [
    {"matches": [{"headers": [{"name": "x-llmplane-variant", "value": "1.1.0"}]}],
     "backendRefs": [{"name": "llama-v1-1-0", "port": 8000, "weight": 1}]},
    {"backendRefs": [{"name": "llama-v1-0-0", "port": 8000, "weight": 90},
                     {"name": "llama-v1-1-0", "port": 8000, "weight": 10}]},
]})
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


def experiment_route(treatments: dict[str, int], allowed: int, verdict: str | None) -> ResourceView:
    """The model route as compose writes it for an experiment: its treatments' weights and what the verdict allows."""
    record = [{"name": "llama-canary", "treatments": treatments, "allowed": allowed, "verdict": verdict,
               "report": "ab" * 32 if verdict else None}]
    return patched(ROUTE, (("metadata", "annotations"), {"llmplane.dev/experiments": json.dumps(record)}))


def karpenter_pool(name: str, capacity: list[str] | None, limit: str | None = "8", pool: str = "inference",
                   scope: str = "c1") -> ResourceView:
    requirements = [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g6.xlarge"]}]
    if capacity is not None:
        requirements.append({"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity})
    spec: dict[str, Any] = {"template": {
        "metadata": {"labels": {"llmplane.dev/pool": pool, "llmplane.dev/gpu-type": "nvidia-l4"}},
        "spec": {"taints": [GPU_TAINT], "requirements": requirements},
    }}
    if limit is not None:
        spec["limits"] = {"nvidia.com/gpu": limit}
    labels = {**BASE_LABELS, "app.kubernetes.io/name": "gpu-pool"}
    return k8s("kubernetes:karpenter.sh/v1:NodePool", name, spec=spec, labels=labels, namespace=None, scope=scope)


SPOT_POOL = karpenter_pool("inference", ["spot", "on-demand"])
BASE_POOL = karpenter_pool("inference-base", ["on-demand"], limit="2")
SYSTEM_POOL = patched(karpenter_pool("system", None, limit=None),
                      (("spec", "template"), {"spec": {"requirements": []}}))

EKS = view("aws:eks/cluster:Cluster", {
    "name": "aws-use1",
    "vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False, "subnetIds": ["a", "b"]},
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"}},
    "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
    "tags": TAGS,
}, name="aws-use1-eks")
ECR = view("aws:ecr/repository:Repository", {"name": "llmplane/vllm", "imageTagMutability": "IMMUTABLE",
                                              "imageScanningConfiguration": {"scanOnPush": True}, "tags": TAGS},
           name="repo")
LOGS = view("aws:cloudwatch/logGroup:LogGroup", {"name": "/aws/eks/x/cluster", "retentionInDays": 90, "tags": TAGS},
            name="logs")
KMS = view("aws:kms/key:Key", {"enableKeyRotation": True, "tags": TAGS}, name="key")
VPC = view("aws:ec2/vpc:Vpc", {"cidrBlock": "10.0.0.0/16", "tags": TAGS}, name="vpc")
RTA = view("aws:ec2/routeTableAssociation:RouteTableAssociation", {"subnetId": "s", "routeTableId": "r"}, name="rta")
BUCKET = view("aws:s3/bucket:Bucket", {"bucket": "llmplane-weights", "tags": TAGS}, name="weights",
              ids=("weights-id",))
PAB = view("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", {
    "bucket": "weights-id", "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
    "restrictPublicBuckets": True}, name="weights-pab")
SSE = view("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", {
    "bucket": "llmplane-weights",
    "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "k"}}]},
    name="weights-sse")
VERSIONING = view("aws:s3/bucketVersioning:BucketVersioning", {
    "bucket": "weights-id", "versioningConfiguration": {"status": "Enabled"}}, name="weights-versioning")
BUCKET_SET = [BUCKET, PAB, SSE, VERSIONING]


def by_dependency(setting: ResourceView) -> ResourceView:
    """A bucket setting as CrossGuard sees it in a preview: the bucket's id unknown, the dependency recorded."""
    return patched(setting, (("bucket",), UNKNOWN), dependencies={"bucket": (BUCKET.urn,)})


GKE = view("gcp:container/cluster:Cluster", {
    "name": "gcp-usc1", "location": "us-central1",
    "privateClusterConfig": {"enablePrivateNodes": True, "enablePrivateEndpoint": True},
    "workloadIdentityConfig": {"workloadPool": "proj.svc.id.goog"},
    "enableShieldedNodes": True, "resourceLabels": GCP_LABELS,
}, name="gcp-usc1-gke", scope="gcp-usc1")


def gke_pool(name: str, spot: bool, max_nodes: int | None = 4, pool: str = "inference") -> ResourceView:
    autoscaling: dict[str, Any] = {"totalMinNodeCount": 0}
    if max_nodes is not None:
        autoscaling["totalMaxNodeCount"] = max_nodes
    return view("gcp:container/nodePool:NodePool", {
        "name": name, "cluster": "gcp-usc1-gke-id", "autoscaling": autoscaling,
        "nodeConfig": {
            "spot": spot, "machineType": "g2-standard-8",
            "guestAccelerators": [{"type": "nvidia-l4", "count": 1}],
            "labels": {"llmplane.dev/pool": pool},
            "shieldedInstanceConfig": {"enableSecureBoot": True, "enableIntegrityMonitoring": True},
            "workloadMetadataConfig": {"mode": "GKE_METADATA"},
            "resourceLabels": GCP_LABELS,
        },
    }, name=f"gcp-usc1-{name}", scope="gcp-usc1")


GKE_SPOT = gke_pool("inference", spot=True)
GKE_BASE = gke_pool("inference-base", spot=False, max_nodes=1)
AR = view("gcp:artifactregistry/repository:Repository", {"repositoryId": "llmplane", "format": "DOCKER",
                                                         "labels": GCP_LABELS}, name="ar", scope="gcp-usc1")
NETWORK = view("gcp:compute/network:Network", {"name": "gcp-usc1", "autoCreateSubnetworks": False}, name="vpc",
               scope="gcp-usc1")


def aws_provider(region: str, name: str) -> ResourceView:
    return view("pulumi:providers:aws", {"region": region}, name=name, scope=None)


USE1, USW2 = aws_provider("us-east-1", "aws-use1-aws"), aws_provider("us-west-2", "aws-usw2-aws")

# --- the network boundary (policies/network.py)
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
DENY_ALL = k8s(NETWORK_POLICY, "default-deny", labels=BASE_LABELS,
               spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
MONITORING_NS = k8s("kubernetes:core/v1:Namespace", "monitoring", labels=BASE_LABELS, namespace=None)
MONITORING_DENY = patched(DENY_ALL, (("metadata", "namespace"), "monitoring"), name="c1-monitoring-default-deny")
DNS_EGRESS = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
              "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
KEDA_RELEASE = view(RELEASE, {"chart": "keda", "namespace": "keda", "createNamespace": True, "values": {}},
                    name="c1-keda")
KEDA_DENY = patched(DENY_ALL, (("metadata", "namespace"), "keda"), name="c1-keda-default-deny")
PROMETHEUS_STACK = view(RELEASE, {"chart": "kube-prometheus-stack", "namespace": "monitoring", "values": {
    "prometheus": {"prometheusSpec": {"enableRemoteWriteReceiver": True}},
    "grafana": {"service": {"type": "ClusterIP"}, "ingress": {"enabled": False}}}}, name="c1-kube-prometheus-stack")
PROMETHEUS_PEERS = [
    {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "loki"}}},
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
     "podSelector": {"matchLabels": {"app": "keda-operator"}}},
]
PROMETHEUS_INGRESS = k8s(NETWORK_POLICY, "prometheus", labels=BASE_LABELS, namespace="monitoring", spec={
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}, "policyTypes": ["Ingress"],
    "ingress": [{"ports": [{"protocol": "TCP", "port": 9090}], "from": PROMETHEUS_PEERS}]})
PROMETHEUS_CR = k8s("kubernetes:monitoring.coreos.com/v1:Prometheus", "k8s", labels=BASE_LABELS,
                    namespace="monitoring", spec={"enableRemoteWriteReceiver": True})
P_FROM = ("spec", "ingress", 0, "from")
MONITORING_SERVICE = k8s("kubernetes:core/v1:Service", "grafana", labels=BASE_LABELS, namespace="monitoring",
                         spec={"type": "ClusterIP", "selector": {"app.kubernetes.io/name": "grafana"},
                               "ports": [{"name": "http", "port": 80, "targetPort": 3000}]})

COMPLIANT_STACK = [
    NAMESPACE, DEPLOY, CPU_DEPLOY, SERVICE, PDB, NETPOL, DEFAULT_DENY, MONITOR, ALERTS, API_KEY, ROUTE,
    SPOT_POOL, BASE_POOL, SYSTEM_POOL, EKS, ECR, LOGS, KMS, VPC, RTA, *BUCKET_SET, GKE, GKE_SPOT, GKE_BASE, AR,
    NETWORK, USE1, USW2, DENY_ALL, MONITORING_NS, MONITORING_DENY, KEDA_RELEASE, KEDA_DENY, PROMETHEUS_STACK,
    PROMETHEUS_INGRESS, MONITORING_SERVICE,
]
"""One of everything, all compliant: the good side of every case below is drawn from it."""

# ---------------------------------------------------------------------------------------------- the table

OK, BAD = False, True


def case(policy: str, name: str, violates: bool, resources, environment: str = "prod"):
    resources = resources if isinstance(resources, list) else [resources]
    return pytest.param(policy, resources, environment, violates, id=f"{policy}:{'bad' if violates else 'ok'}:{name}")


# --- the inference gateway (policies/gateway.py)
GW_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
POOL_REF = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llama-v1-0-0", "weight": 100}
INFERENCE_POOL = k8s("kubernetes:inference.networking.k8s.io/v1:InferencePool", "llama-v1-0-0",
                     {"selector": {"matchLabels": SELECTOR}, "targetPorts": [{"number": 8000}]})
POOL_ROUTE = k8s(GW_ROUTE, "llama", {"parentRefs": [{"name": "llmplane", "namespace": "llmplane-gateway"}],
                                     "rules": [{"backendRefs": [POOL_REF]}]})
SERVICE_ROUTE = patched(POOL_ROUTE, (("spec", "rules", 0, "backendRefs"), [{"name": "llama-v1-0-0", "port": 8000}]))
TENANT_KEYS = k8s("kubernetes:core/v1:Secret", "tenant-search-api-keys", labels={"llmplane.dev/tenant": "search"},
                  namespace="llmplane-gateway", stringData={"search.searchApiKey": SECRET})
BUDGET = k8s("kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy", "tenant-budgets", {
    "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "llmplane"}],
    "rateLimit": {"global": {"rules": [{
        "clientSelectors": [{"headers": [{"name": "x-llmplane-client", "type": "RegularExpression",
                                          "value": r"^search\.[^.]+$"}]}],
        "limit": {"requests": 10000, "unit": "Minute"}}]}}}, namespace="llmplane-gateway")
ROUTE_AUTH = k8s("kubernetes:gateway.envoyproxy.io/v1alpha1:SecurityPolicy", "llama", {
    "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llama"}],
    "apiKeyAuth": {"credentialRefs": [{"name": "tenant-search-api-keys"}],
                   "extractFrom": [{"headers": ["x-api-key"]}]}})
STANDBY = {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": "failover-llama-c2"}
ROUTE_TRAFFIC = k8s("kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy", "llama-timeouts", {
    "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llama"}],
    "mergeType": "StrategicMerge", "timeout": {"http": {"requestTimeout": "300s"}}}, namespace="llmplane-gateway")
GATEWAY_AUTH = patched(ROUTE_AUTH, (("spec", "targetRefs"), [{"kind": "Gateway", "name": "llmplane"}]),
                       (("metadata", "namespace"), "llmplane-gateway"))

PAUSE = "registry.k8s.io/pause:3.10@sha256:" + "e" * 64
OWNERSHIP = {"name": "own", "image": "vllm@sha256:" + "a" * 64, "command": ["python3", "-c", "..."],
             "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
                                 "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}}
"""The node cache's one root step: every capability dropped but CHOWN, no escalation."""

CASES = [
    # --- Kubernetes
    case("k8s-resources-requests-limits", "gpu requests = limits", OK, DEPLOY),
    case("k8s-resources-requests-limits", "cpu-only container", OK, CPU_DEPLOY),
    case("k8s-resources-requests-limits", "gpu request below limit", BAD,
         patched(DEPLOY, (C + ("resources", "limits", "nvidia.com/gpu"), "2"))),
    case("k8s-resources-requests-limits", "gpu requested, not limited", BAD,
         patched(DEPLOY, (C + ("resources", "limits", "nvidia.com/gpu"), DELETE))),
    case("k8s-resources-requests-limits", "no memory limit", BAD,
         patched(DEPLOY, (C + ("resources", "limits", "memory"), DELETE))),
    case("k8s-resources-requests-limits", "no resources", BAD, patched(DEPLOY, (C + ("resources",), DELETE))),
    case("k8s-probes", "readiness, liveness, startup", OK, DEPLOY),
    case("k8s-probes", "cpu container needs no startup probe", OK, CPU_DEPLOY),
    case("k8s-probes", "no readiness probe", BAD, patched(DEPLOY, (C + ("readinessProbe",), DELETE))),
    case("k8s-probes", "gpu container without startup probe", BAD, patched(DEPLOY, (C + ("startupProbe",), DELETE))),
    case("k8s-probes", "a pause placeholder holding a GPU slot runs nothing to probe", OK,
         patched(DEPLOY, (C + ("image",), PAUSE), (C + ("readinessProbe",), DELETE),
                 (C + ("livenessProbe",), DELETE), (C + ("startupProbe",), DELETE))),
    case("k8s-probes", "a look-alike of the pause image is probed", BAD,
         patched(DEPLOY, (C + ("image",), "example.com/registry.k8s.io/pause:3.10@sha256:" + "e" * 64),
                 (C + ("readinessProbe",), DELETE))),
    case("k8s-run-as-non-root", "pod runAsNonRoot", OK, DEPLOY),
    case("k8s-run-as-non-root", "a CHOWN-only init container hands a host folder over", OK,
         patched(DEPLOY, (POD + ("initContainers",), [OWNERSHIP]))),
    case("k8s-run-as-non-root", "a root init container keeping other capabilities", BAD,
         patched(DEPLOY, (POD + ("initContainers",), [
             {**OWNERSHIP, "securityContext": {**OWNERSHIP["securityContext"],
                                               "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "NET_RAW"]}}}]))),
    case("k8s-run-as-non-root", "root as the main container, even with CHOWN only", BAD,
         patched(DEPLOY, (C + ("securityContext",), OWNERSHIP["securityContext"]))),
    case("k8s-run-as-non-root", "not set", BAD, patched(DEPLOY, (POD + ("securityContext",), DELETE))),
    case("k8s-run-as-non-root", "container runs as uid 0", BAD,
         patched(DEPLOY, (C + ("securityContext", "runAsUser"), 0))),
    case("k8s-no-privilege-escalation", "explicitly off", OK, DEPLOY),
    case("k8s-no-privilege-escalation", "allowed", BAD,
         patched(DEPLOY, (C + ("securityContext", "allowPrivilegeEscalation"), True))),
    case("k8s-no-privilege-escalation", "left to the default", BAD,
         patched(DEPLOY, (C + ("securityContext", "allowPrivilegeEscalation"), DELETE))),
    case("k8s-no-privileged", "unprivileged", OK, DEPLOY),
    case("k8s-no-privileged", "privileged container", BAD,
         patched(DEPLOY, (C + ("securityContext", "privileged"), True))),
    case("k8s-no-privileged", "host network", BAD, patched(DEPLOY, (POD + ("hostNetwork",), True))),
    case("k8s-read-only-root-filesystem", "read-only", OK, DEPLOY),
    case("k8s-read-only-root-filesystem", "writable", BAD,
         patched(DEPLOY, (C + ("securityContext", "readOnlyRootFilesystem"), False))),
    case("k8s-image-digest", "by digest", OK, DEPLOY),
    case("k8s-image-digest", "mutable tag", BAD, patched(DEPLOY, (C + ("image",), "vllm/vllm-openai:latest"))),
    case("k8s-image-digest", "truncated digest", BAD, patched(DEPLOY, (C + ("image",), "vllm/vllm-openai@sha256:ab"))),
    case("k8s-pdb-not-zero", "maxUnavailable 1", OK, PDB),
    case("k8s-pdb-not-zero", "maxUnavailable 0", BAD, patched(PDB, (("spec", "maxUnavailable"), 0))),
    case("k8s-pdb-not-zero", "maxUnavailable 0%", BAD, patched(PDB, (("spec", "maxUnavailable"), "0%"))),
    case("k8s-pdb-not-zero", "minAvailable 100%", BAD,
         patched(PDB, (("spec", "maxUnavailable"), DELETE), (("spec", "minAvailable"), "100%"))),
    case("k8s-network-policy", "own policy", OK, [DEPLOY, NETPOL]),
    case("k8s-network-policy", "namespace default-deny", OK, [DEPLOY, DEFAULT_DENY]),
    case("k8s-network-policy", "no policy", BAD, [DEPLOY]),
    case("k8s-network-policy", "policy selects other pods", BAD,
         [DEPLOY, patched(NETPOL, (("spec", "podSelector", "matchLabels", "llmplane.dev/model"), "other"))]),
    case("k8s-network-policy", "policy in another namespace", BAD,
         [DEPLOY, patched(NETPOL, (("metadata", "namespace"), "default"))]),
    case("k8s-network-policy", "policy in another cluster", BAD, [DEPLOY, dataclasses.replace(NETPOL, scope="c2")]),
    case("k8s-no-public-load-balancer", "ClusterIP", OK, SERVICE),
    case("k8s-no-public-load-balancer", "internal LoadBalancer", OK, patched(
        SERVICE, (("spec", "type"), "LoadBalancer"),
        (("metadata", "annotations"), {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}))),
    case("k8s-no-public-load-balancer", "public LoadBalancer", BAD,
         patched(SERVICE, (("spec", "type"), "LoadBalancer"))),
    case("k8s-recommended-labels", "vLLM workload", OK, DEPLOY),
    case("k8s-recommended-labels", "namespace", OK, NAMESPACE),
    case("k8s-recommended-labels", "GPU NodePool", OK, BASE_POOL),
    case("k8s-recommended-labels", "namespace without part-of", BAD,
         patched(NAMESPACE, (("metadata", "labels", "app.kubernetes.io/part-of"), DELETE))),
    case("k8s-recommended-labels", "unlabelled NodePool", BAD, patched(BASE_POOL, (("metadata", "labels"), DELETE))),
    case("k8s-recommended-labels", "vLLM pods without model-version", BAD, patched(
        DEPLOY, (("spec", "template", "metadata", "labels", "llmplane.dev/model-version"), DELETE))),
    # --- AWS
    case("aws-eks-private-endpoint", "private only", OK, EKS),
    case("aws-eks-private-endpoint", "public endpoint outside prod", OK,
         patched(EKS, (("vpcConfig", "endpointPublicAccess"), True)), environment="staging"),
    case("aws-eks-private-endpoint", "public endpoint in prod", BAD,
         patched(EKS, (("vpcConfig", "endpointPublicAccess"), True))),
    case("aws-eks-private-endpoint", "public endpoint by default in prod", BAD,
         patched(EKS, (("vpcConfig", "endpointPublicAccess"), DELETE))),
    case("aws-eks-private-endpoint", "no private access", BAD,
         patched(EKS, (("vpcConfig", "endpointPrivateAccess"), False)), environment="dev"),
    case("aws-eks-secrets-encryption", "KMS envelope", OK, EKS),
    case("aws-eks-secrets-encryption", "none", BAD, patched(EKS, (("encryptionConfig",), DELETE))),
    case("aws-eks-secrets-encryption", "no secrets resource", BAD,
         patched(EKS, (("encryptionConfig", "resources"), []))),
    case("aws-eks-control-plane-logging", "all logs", OK, EKS),
    case("aws-eks-control-plane-logging", "no audit log", BAD,
         patched(EKS, (("enabledClusterLogTypes",), ["api", "authenticator"]))),
    case("aws-eks-control-plane-logging", "no logs", BAD, patched(EKS, (("enabledClusterLogTypes",), DELETE))),
    case("aws-ecr-immutable-tags", "immutable", OK, ECR),
    case("aws-ecr-immutable-tags", "mutable", BAD, patched(ECR, (("imageTagMutability",), "MUTABLE"))),
    case("aws-ecr-immutable-tags", "default", BAD, patched(ECR, (("imageTagMutability",), DELETE))),
    case("aws-ecr-scan-on-push", "scanned", OK, ECR),
    case("aws-ecr-scan-on-push", "not scanned", BAD,
         patched(ECR, (("imageScanningConfiguration", "scanOnPush"), False))),
    case("aws-s3-private", "public access block", OK, BUCKET_SET),
    case("aws-s3-private", "paired by dependency (preview)", OK, [BUCKET, by_dependency(PAB)]),
    case("aws-s3-private", "no public access block", BAD, [BUCKET, SSE, VERSIONING]),
    case("aws-s3-private", "block with a gap", BAD,
         [BUCKET, patched(PAB, (("restrictPublicBuckets",), False))]),
    case("aws-s3-private", "block of another bucket", BAD, [BUCKET, patched(PAB, (("bucket",), "logs-id"))]),
    case("aws-s3-private", "public-read ACL", BAD, [patched(BUCKET, (("acl",), "public-read")), PAB]),
    case("aws-s3-encrypted", "SSE configuration", OK, BUCKET_SET),
    case("aws-s3-encrypted", "paired by dependency (preview)", OK, [BUCKET, by_dependency(SSE)]),
    case("aws-s3-encrypted", "inline (deprecated) SSE", OK, [patched(BUCKET, (("serverSideEncryptionConfiguration",), {
        "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}}))]),
    case("aws-s3-encrypted", "no SSE", BAD, [BUCKET, PAB, VERSIONING]),
    case("aws-s3-versioned", "versioning enabled", OK, BUCKET_SET),
    case("aws-s3-versioned", "versioning suspended", BAD,
         [BUCKET, patched(VERSIONING, (("versioningConfiguration", "status"), "Suspended"))]),
    case("aws-s3-versioned", "no versioning", BAD, [BUCKET, PAB, SSE]),
    case("aws-log-retention", "90 days", OK, LOGS),
    case("aws-log-retention", "never expires", BAD, patched(LOGS, (("retentionInDays",), DELETE))),
    case("aws-log-retention", "0 (forever)", BAD, patched(LOGS, (("retentionInDays",), 0))),
    case("aws-required-tags", "tagged VPC", OK, VPC),
    case("aws-required-tags", "untaggable association", OK, RTA),
    case("aws-required-tags", "VPC without owner", BAD, patched(VPC, (("tags", "owner"), DELETE))),
    case("aws-required-tags", "untagged subnet", BAD,
         view("aws:ec2/subnet:Subnet", {"vpcId": "v", "cidrBlock": "10.0.0.0/19"}, name="subnet")),
    case("aws-kms-key-rotation", "rotating", OK, KMS),
    case("aws-kms-key-rotation", "asymmetric key (cannot rotate)", OK,
         view("aws:kms/key:Key", {"customerMasterKeySpec": "RSA_2048", "tags": TAGS}, name="signing")),
    case("aws-kms-key-rotation", "not rotating", BAD, patched(KMS, (("enableKeyRotation",), DELETE))),
    # --- GCP
    case("gcp-gke-private-nodes", "private cluster", OK, [GKE, GKE_SPOT]),
    case("gcp-gke-private-nodes", "public nodes", BAD,
         patched(GKE, (("privateClusterConfig", "enablePrivateNodes"), False))),
    case("gcp-gke-private-nodes", "node pool opts out", BAD,
         patched(GKE_SPOT, (("networkConfig",), {"enablePrivateNodes": False}))),
    case("gcp-gke-workload-identity", "cluster and pools", OK, [GKE, GKE_SPOT]),
    case("gcp-gke-workload-identity", "cluster without pool", BAD, patched(GKE, (("workloadIdentityConfig",), DELETE))),
    case("gcp-gke-workload-identity", "pool exposes node metadata", BAD,
         patched(GKE_SPOT, (("nodeConfig", "workloadMetadataConfig", "mode"), "GCE_METADATA"))),
    case("gcp-gke-shielded-nodes", "shielded, secure boot", OK, [GKE, GKE_SPOT]),
    case("gcp-gke-shielded-nodes", "cluster flag off", BAD, patched(GKE, (("enableShieldedNodes",), False))),
    case("gcp-gke-shielded-nodes", "pool without secure boot", BAD,
         patched(GKE_SPOT, (("nodeConfig", "shieldedInstanceConfig", "enableSecureBoot"), False))),
    case("gcp-required-labels", "cluster, pool, registry", OK, [GKE, GKE_SPOT, AR]),
    case("gcp-required-labels", "unlabelable network", OK, NETWORK),
    case("gcp-required-labels", "cluster without owner", BAD, patched(GKE, (("resourceLabels", "owner"), DELETE))),
    case("gcp-required-labels", "unlabelled registry", BAD, patched(AR, (("labels",), DELETE))),
    case("gcp-required-labels", "unlabelled pool nodes", BAD,
         patched(GKE_SPOT, (("nodeConfig", "resourceLabels"), DELETE))),
    # --- platform
    case("platform-service-monitor", "scraped, alerts in its cluster", OK, [DEPLOY, SERVICE, MONITOR, ALERTS]),
    case("platform-service-monitor", "not vLLM", OK, [CPU_DEPLOY]),
    case("platform-service-monitor", "no ServiceMonitor", BAD, [DEPLOY, SERVICE, ALERTS]),
    case("platform-service-monitor", "monitor selects another service", BAD, [
        DEPLOY, SERVICE, ALERTS,
        patched(MONITOR, (("spec", "selector", "matchLabels", "llmplane.dev/model"), "other"))]),
    case("platform-service-monitor", "monitor in another cluster", BAD,
         [DEPLOY, SERVICE, ALERTS, dataclasses.replace(MONITOR, scope="c2")]),
    case("platform-service-monitor", "scraped, no alert rules", BAD, [DEPLOY, SERVICE, MONITOR]),
    case("platform-service-monitor", "alert rules in another cluster", BAD,
         [DEPLOY, SERVICE, MONITOR, dataclasses.replace(ALERTS, scope="c2")]),
    case("platform-service-monitor", "rules without a vLLM alert", BAD,
         [DEPLOY, SERVICE, MONITOR, patched(ALERTS, (("spec", "groups", 0, "rules"), [
             {"alert": "NodeDown", "expr": "up == 0"}]))]),
    case("platform-multi-region", "two AWS regions", OK, [USE1, USW2]),
    case("platform-multi-region", "AWS and GCP", OK, [USE1, GKE]),
    case("platform-multi-region", "one region outside prod", OK, [USE1], environment="staging"),
    case("platform-multi-region", "one region in prod", BAD, [USE1, aws_provider("us-east-1", "other")]),
    case("platform-multi-region", "a GKE zone is its region", BAD,
         [patched(GKE, (("location",), "us-central1-a")), patched(GKE, (("location",), "us-central1-b"))]),
    case("platform-gpu-pool-max", "NodePool GPU limit", OK, [SPOT_POOL, BASE_POOL]),
    case("platform-gpu-pool-max", "CPU NodePool needs none", OK, SYSTEM_POOL),
    case("platform-gpu-pool-max", "GKE autoscaling max", OK, GKE_SPOT),
    case("platform-gpu-pool-max", "NodePool without GPU limit", BAD, karpenter_pool("big", ["on-demand"], limit=None)),
    case("platform-gpu-pool-max", "GKE GPU pool without max", BAD, gke_pool("big", spot=False, max_nodes=None)),
    case("platform-traffic-weights", "90 + 10 and a pinned A/B rule", OK, ROUTE),
    case("platform-traffic-weights", "80 + 10", BAD,
         patched(ROUTE, (("spec", "rules", 1, "backendRefs", 0, "weight"), 80))),
    case("platform-traffic-weights", "90 + 10 then a stand-by Backend without a weight (counts as 1)", BAD,
         patched(ROUTE, (("spec", "rules", 1, "backendRefs"), [*ROUTE.props["spec"]["rules"][1]["backendRefs"],
                                                               STANDBY]))),
    case("platform-traffic-weights", "weights left to default 1", BAD, patched(
        ROUTE, (("spec", "rules", 1, "backendRefs", 0, "weight"), DELETE),
        (("spec", "rules", 1, "backendRefs", 1, "weight"), DELETE))),
    case("platform-experiment-verdict", "canary at its first step, no verdict yet", OK,
         experiment_route({"1.1.0": 10}, allowed=10, verdict=None)),
    case("platform-experiment-verdict", "raised to 25 with a promote verdict for 25", OK,
         experiment_route({"1.1.0": 25}, allowed=25, verdict="promote")),
    case("platform-experiment-verdict", "a route without experiments", OK, ROUTE),
    case("platform-experiment-verdict", "raised to 25 without a verdict", BAD,
         experiment_route({"1.1.0": 25}, allowed=10, verdict=None)),
    case("platform-experiment-verdict", "raised to 50 on a promote verdict for 25", BAD,
         experiment_route({"1.1.0": 50}, allowed=25, verdict="promote")),
    case("platform-experiment-verdict", "kept at 10 after a rollback verdict", BAD,
         experiment_route({"1.1.0": 10}, allowed=0, verdict="rollback")),
    case("platform-not-spot-only", "spot over an on-demand base", OK, [SPOT_POOL, BASE_POOL]),
    case("platform-not-spot-only", "on-demand NodePool", OK, karpenter_pool("large", ["on-demand"], pool="large")),
    case("platform-not-spot-only", "capacity type unconstrained (on-demand)", OK, karpenter_pool("large", None)),
    case("platform-not-spot-only", "GKE spot over a base pool", OK, [GKE_SPOT, GKE_BASE]),
    case("platform-not-spot-only", "spot-only outside prod", OK, [SPOT_POOL, GKE_SPOT], environment="dev"),
    case("platform-not-spot-only", "spot-first NodePool alone", BAD, [SPOT_POOL]),
    case("platform-not-spot-only", "GKE spot pool alone", BAD, [GKE_SPOT]),
    case("platform-not-spot-only", "base pool in another cluster", BAD,
         [SPOT_POOL, karpenter_pool("inference-base", ["on-demand"], scope="c2")]),
    case("platform-not-spot-only", "on-demand pool limited to 0 GPUs", BAD,
         [SPOT_POOL, karpenter_pool("inference-base", ["on-demand"], limit="0")]),
    case("platform-no-plaintext-secrets", "API key from a Secret", OK, DEPLOY),
    case("platform-no-plaintext-secrets", "Secret data is a Pulumi secret", OK, API_KEY),
    case("platform-no-plaintext-secrets", "token-count setting is no secret", OK,
         patched(DEPLOY, (C + ("env",), [{"name": "MAX_NUM_BATCHED_TOKENS", "value": "8192"}]))),
    case("platform-no-plaintext-secrets", "HF token as a literal", BAD,
         patched(DEPLOY, (C + ("env",), [{"name": "HF_TOKEN", "value": "hf_abcdef"}]))),
    case("platform-no-plaintext-secrets", "API key as a literal", BAD,
         patched(DEPLOY, (C + ("env", 1), {"name": "VLLM_API_KEY", "value": "sk-123"}))),
    case("platform-no-plaintext-secrets", "Secret data in plain text", BAD,
         patched(API_KEY, (("stringData",), {"api-key": "sk-123"}))),
    case("platform-route-through-pool", "route to a pool", OK, [INFERENCE_POOL, POOL_ROUTE]),
    case("platform-route-through-pool", "no pools in the cluster yet", OK, [SERVICE_ROUTE]),
    case("platform-route-through-pool", "route to a Service beside pools", BAD, [INFERENCE_POOL, SERVICE_ROUTE]),
    case("platform-route-through-pool", "a route that carries no model (the feedback endpoint) to its Service", OK,
         [INFERENCE_POOL, patched(SERVICE_ROUTE, (("metadata", "labels"), {"app.kubernetes.io/name": "feedback"}))]),
    case("platform-one-pool-per-rule", "a rule per version, one pool each", OK, [INFERENCE_POOL, patched(
        POOL_ROUTE, (("spec", "rules"), [{"backendRefs": [POOL_REF]},
                                         {"backendRefs": [{**POOL_REF, "name": "llama-v1-1-0"}]}]))]),
    case("platform-one-pool-per-rule", "a canary over two pools in one rule", BAD, [INFERENCE_POOL, patched(
        POOL_ROUTE, (("spec", "rules", 0, "backendRefs"), [{**POOL_REF, "weight": 90},
                                                          {**POOL_REF, "name": "llama-v1-1-0", "weight": 10}]))]),
    case("platform-one-pool-per-rule", "a pool beside a stand-by Backend", BAD, [INFERENCE_POOL, patched(
        POOL_ROUTE, (("spec", "rules", 0, "backendRefs"), [POOL_REF, STANDBY]))]),
    case("platform-budget-kept-on-routes", "route policy merged into the budget policy", OK,
         [BUDGET, ROUTE_TRAFFIC]),
    case("platform-budget-kept-on-routes", "route policy where no gateway policy holds budgets", OK,
         [patched(ROUTE_TRAFFIC, (("spec", "mergeType"), DELETE))]),
    case("platform-budget-kept-on-routes", "route policy replacing the budget policy", BAD,
         [BUDGET, patched(ROUTE_TRAFFIC, (("spec", "mergeType"), DELETE))]),
    case("platform-tenant-budget", "budgeted tenant", OK, [TENANT_KEYS, BUDGET]),
    case("platform-tenant-budget", "tenant without a rule", BAD, [TENANT_KEYS]),
    case("platform-tenant-budget", "a rule for another tenant", BAD,
         [TENANT_KEYS, patched(BUDGET, (("spec", "rateLimit", "global", "rules", 0, "clientSelectors", 0, "headers",
                                         0, "value"), r"^searchers\.[^.]+$"))]),
    case("platform-route-authenticated", "policy on the route", OK, [TENANT_KEYS, POOL_ROUTE, ROUTE_AUTH]),
    case("platform-route-authenticated", "policy on the gateway", OK, [TENANT_KEYS, POOL_ROUTE, GATEWAY_AUTH]),
    case("platform-route-authenticated", "no tenants served yet", OK, [POOL_ROUTE]),
    case("platform-route-authenticated", "route without a policy", BAD, [TENANT_KEYS, POOL_ROUTE]),
    case("platform-route-authenticated", "policy that does not authenticate", BAD,
         [TENANT_KEYS, POOL_ROUTE, patched(ROUTE_AUTH, (("spec", "apiKeyAuth"), DELETE))]),
    case("k8s-namespace-default-deny", "deny-all beside the namespace", OK, [NAMESPACE, DENY_ALL]),
    case("k8s-namespace-default-deny", "deny-all that still lets pods resolve names", OK,
         [NAMESPACE, patched(DENY_ALL, (("spec", "egress"), [DNS_EGRESS]))]),
    case("k8s-namespace-default-deny", "policyTypes left to default by an egress rule", OK,
         [NAMESPACE, patched(DENY_ALL, (("spec", "policyTypes"), DELETE), (("spec", "egress"), [DNS_EGRESS]))]),
    case("k8s-namespace-default-deny", "a namespace a chart creates, denied", OK, [KEDA_RELEASE, KEDA_DENY]),
    case("k8s-namespace-default-deny", "a release into a namespace it does not create", OK,
         [patched(KEDA_RELEASE, (("createNamespace",), DELETE))]),
    case("k8s-namespace-default-deny", "no policy", BAD, [NAMESPACE]),
    case("k8s-namespace-default-deny", "ingress only", BAD, [NAMESPACE, DEFAULT_DENY]),
    case("k8s-namespace-default-deny", "egress left out (no egress rule, no policyTypes)", BAD,
         [NAMESPACE, patched(DENY_ALL, (("spec", "policyTypes"), DELETE))]),
    case("k8s-namespace-default-deny", "selects some pods only", BAD,
         [NAMESPACE, patched(DENY_ALL, (("spec", "podSelector"), {"matchLabels": SELECTOR}))]),
    case("k8s-namespace-default-deny", "a rule admitting everything", BAD,
         [NAMESPACE, patched(DENY_ALL, (("spec", "ingress"), [{}]))]),
    case("k8s-namespace-default-deny", "egress to any address, on 443 only", OK,
         [NAMESPACE, patched(DENY_ALL, (("spec", "egress"), [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                                                              "ports": [{"port": 443}]}]))]),
    case("k8s-namespace-default-deny", "egress to every address", BAD,
         [NAMESPACE, patched(DENY_ALL, (("spec", "egress"), [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]))]),
    case("k8s-namespace-default-deny", "egress to every namespace", BAD,
         [NAMESPACE, patched(DENY_ALL, (("spec", "egress"), [{"to": [{"namespaceSelector": {}}]}]))]),
    case("k8s-namespace-default-deny", "the same namespace in a second cluster, denied in the first only", BAD,
         [NAMESPACE, DENY_ALL, dataclasses.replace(NAMESPACE, scope="c2", urn=NAMESPACE.urn + "-c2")]),
    case("k8s-namespace-default-deny", "deny-all in another namespace", BAD, [NAMESPACE, MONITORING_DENY]),
    case("k8s-namespace-default-deny", "deny-all in another cluster", BAD,
         [NAMESPACE, dataclasses.replace(DENY_ALL, scope="c2")]),
    case("k8s-namespace-default-deny", "a namespace a chart creates, open", BAD, [KEDA_RELEASE]),
    case("platform-monitoring-not-exposed", "ClusterIP Grafana", OK, MONITORING_SERVICE),
    case("platform-monitoring-not-exposed", "chart values keep ClusterIP, no ingress", OK, PROMETHEUS_STACK),
    case("platform-monitoring-not-exposed", "a load balancer outside monitoring", OK,
         patched(SERVICE, (("spec", "type"), "LoadBalancer"))),
    case("platform-monitoring-not-exposed", "a route to the models", OK, ROUTE),
    case("platform-monitoring-not-exposed", "LoadBalancer Grafana", BAD,
         patched(MONITORING_SERVICE, (("spec", "type"), "LoadBalancer"))),
    case("platform-monitoring-not-exposed", "NodePort Grafana", BAD,
         patched(MONITORING_SERVICE, (("spec", "type"), "NodePort"))),
    case("platform-monitoring-not-exposed", "an Ingress in monitoring", BAD,
         k8s("kubernetes:networking.k8s.io/v1:Ingress", "grafana", labels=BASE_LABELS, namespace="monitoring",
             spec={"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                 "service": {"name": "grafana", "port": {"number": 80}}}}]}}]})),
    case("platform-monitoring-not-exposed", "a route to Grafana", BAD,
         patched(ROUTE, (("spec", "rules", 0, "backendRefs"), [{"name": "grafana", "namespace": "monitoring",
                                                               "port": 80}]))),
    case("platform-monitoring-not-exposed", "chart values make Grafana a LoadBalancer", BAD,
         patched(PROMETHEUS_STACK, (("values", "grafana", "service", "type"), "LoadBalancer"))),
    case("platform-monitoring-not-exposed", "chart values give Grafana an Ingress", BAD,
         patched(PROMETHEUS_STACK, (("values", "grafana", "ingress", "enabled"), True))),
    case("platform-remote-write-restricted", "port 9090 admits Loki and KEDA's operator", OK,
         [PROMETHEUS_STACK, PROMETHEUS_INGRESS]),
    case("platform-remote-write-restricted", "receiver off", OK,
         patched(PROMETHEUS_STACK, (("values", "prometheus", "prometheusSpec", "enableRemoteWriteReceiver"), False))),
    case("platform-remote-write-restricted", "Helm-named Prometheus selected by its name label", OK,
         [PROMETHEUS_STACK, patched(PROMETHEUS_INGRESS, (("spec", "podSelector", "matchLabels"),
                                                         {"prometheus": "kps-prometheus"}))]),
    case("platform-remote-write-restricted", "a Prometheus resource selected by its name", OK,
         [PROMETHEUS_CR, patched(PROMETHEUS_INGRESS, (("spec", "podSelector", "matchLabels"),
                                                      {"operator.prometheus.io/name": "k8s"}))]),
    case("platform-remote-write-restricted", "no NetworkPolicy", BAD, [PROMETHEUS_STACK]),
    case("platform-remote-write-restricted", "a policy for other pods only", BAD,
         [PROMETHEUS_STACK, patched(PROMETHEUS_INGRESS, (("spec", "podSelector", "matchLabels"),
                                                         {"app.kubernetes.io/name": "loki"}))]),
    case("platform-remote-write-restricted", "a Prometheus resource, the policy names another", BAD,
         [PROMETHEUS_CR, patched(PROMETHEUS_INGRESS, (("spec", "podSelector", "matchLabels"),
                                                      {"operator.prometheus.io/name": "other"}))]),
    case("platform-remote-write-restricted", "from every namespace", BAD,
         [PROMETHEUS_STACK, patched(PROMETHEUS_INGRESS, (P_FROM, [{"namespaceSelector": {}}]))]),
    case("platform-remote-write-restricted", "from every pod of a namespace", BAD,
         [PROMETHEUS_STACK, patched(PROMETHEUS_INGRESS, (P_FROM, [
             {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}]))]),
    case("platform-remote-write-restricted", "from an empty podSelector", BAD,
         [PROMETHEUS_STACK, patched(PROMETHEUS_INGRESS, (P_FROM, [{"podSelector": {}}]))]),
    case("platform-remote-write-restricted", "no from at all", BAD,
         [PROMETHEUS_STACK, patched(PROMETHEUS_INGRESS, (P_FROM, DELETE))]),
    case("platform-remote-write-restricted", "from an address range", BAD,
         [PROMETHEUS_STACK, patched(PROMETHEUS_INGRESS, (P_FROM, [{"ipBlock": {"cidr": "10.0.0.0/8"}}]))]),
    case("platform-remote-write-restricted", "a second policy opening every port", BAD,
         [PROMETHEUS_STACK, PROMETHEUS_INGRESS,
          patched(PROMETHEUS_INGRESS, (("spec", "ingress"), [{"from": [{"namespaceSelector": {}}]}]),
                  name="c1-prometheus-open")]),
    case("platform-remote-write-restricted", "a proxy's write port in the pod open to every namespace", BAD,
         [PROMETHEUS_STACK, patched(PROMETHEUS_INGRESS, (("spec", "ingress"), [
             {"ports": [{"port": 9091}], "from": PROMETHEUS_PEERS},
             {"ports": [{"port": 9092}], "from": [{"namespaceSelector": {}}]}]))]),
    case("platform-remote-write-restricted", "the policy in another cluster", BAD,
         [PROMETHEUS_STACK, dataclasses.replace(PROMETHEUS_INGRESS, scope="c2")]),
]


@pytest.mark.parametrize(("policy", "resources", "environment", "violates"), CASES)
def test_policy_case(policy, resources, environment, violates):
    rule = BY_NAME[policy]
    findings = rule.run(resources, Context(environment=environment))
    if violates:
        assert findings, f"{policy} should reject this"
        urns = {r.urn for r in resources} | {""}
        for finding in findings:
            assert finding.message and finding.urn in urns
    else:
        assert findings == [], f"{policy} should accept this: {findings}"


def test_every_policy_has_a_compliant_and_a_violating_case():
    covered = {(p.values[0], p.values[3]) for p in CASES}
    missing = [(r.name, kind) for r in RULES for kind in (OK, BAD) if (r.name, kind) not in covered]
    assert missing == []


def test_the_compliant_stack_passes_every_policy_in_prod():
    for rule in RULES:
        assert rule.run(COMPLIANT_STACK, Context(environment="prod")) == [], rule.name


def test_at_least_25_policies_each_named_described_and_remediable():
    assert len(RULES) >= 25
    for rule in RULES:
        assert re.fullmatch(r"(k8s|aws|gcp|platform)(-[a-z0-9]+)+", rule.name), rule.name
        assert rule.description.endswith(".") and len(rule.description) > 20, rule.name
        assert len(rule.remediation) > 20, rule.name
    assert len({r.name for r in RULES}) == len(RULES)


def test_alert_rules_can_be_switched_off(monkeypatch):
    rule = BY_NAME["platform-service-monitor"]
    assert rule.run([DEPLOY, SERVICE, MONITOR], Context("prod"))
    monkeypatch.setattr(platform, "ALERT_RULES_REQUIRED", False)
    assert rule.run([DEPLOY, SERVICE, MONITOR], Context("prod")) == []


def test_unknown_values_are_never_violations():
    unknown_image = patched(DEPLOY, (C + ("image",), UNKNOWN))
    assert BY_NAME["k8s-image-digest"].run([unknown_image], Context("prod")) == []
    unknown_vpc = patched(EKS, (("vpcConfig", "endpointPublicAccess"), UNKNOWN))
    assert BY_NAME["aws-eks-private-endpoint"].run([unknown_vpc], Context("prod")) == []


def test_secret_data_is_judged_only_where_secrets_are_recognisable():
    plain_secret = patched(API_KEY, (("stringData",), {"api-key": "sk-123"}))
    rule = BY_NAME["platform-no-plaintext-secrets"]
    assert rule.run([plain_secret], Context("prod", secrets_marked=True))
    assert rule.run([plain_secret], Context("prod", secrets_marked=False)) == []


# ---------------------------------------------------------------------------------------------- shipped environments


@pytest.mark.parametrize("environment", ENVIRONMENTS_SHIPPED)
def test_shipped_environment_has_no_mandatory_violation(environment):
    violations = evaluate(plan_of(environment))
    assert mandatory(violations) == [], verdict(plan_of(environment), violations)
    for violation in violations:
        assert set(violation) == {"policy", "enforcement", "urn", "message"}
        assert violation["policy"] in BY_NAME


@pytest.mark.parametrize(("environment", "level"),
                         [("local", "advisory"), ("dev", "advisory"), ("staging", "mandatory"), ("prod", "mandatory")])
def test_shipped_enforcement(environment, level):
    levels = enforcement_levels(plan_of(environment).spec.policy, environment)
    assert set(levels) == set(BY_NAME)
    assert set(levels.values()) == {level}


# ---------------------------------------------------------------------------------------------- broken environments


def _cluster(values: dict, name: str) -> dict:
    return next(c for c in values["llmplane:clusters"] if c["name"] == name)


def _pool(values: dict, cluster: str, pool: str) -> dict:
    return next(p for p in _cluster(values, cluster)["pools"] if p["name"] == pool)


def spot_only_aws(values: dict) -> None:
    _pool(values, "aws-use1", "inference")["onDemandBase"] = 0


def spot_only_gcp(values: dict) -> None:
    _pool(values, "gcp-usc1", "inference")["onDemandBase"] = 0


def single_region(values: dict) -> None:
    values["llmplane:clusters"] = [c for c in values["llmplane:clusters"] if c["name"] in ("aws-use1", "onprem-dc1")]
    values["llmplane:routing"]["failoverOrder"] = ["aws-use1", "onprem-dc1"]
    values["llmplane:hybrid"][0]["cloudClusters"] = ["aws-use1"]
    values["llmplane:models"]["llama-3-70b"]["clusters"] = ["aws-use1"]


def observability_off(values: dict) -> None:
    values["llmplane:observability"]["enabled"] = False


def unprotected(values: dict) -> None:
    values["llmplane:protect"] = False


BROKEN: list[tuple[str, Callable[[dict], None], str]] = [
    ("prod", spot_only_aws, "platform-not-spot-only"),
    ("prod", spot_only_gcp, "platform-not-spot-only"),
    ("prod", single_region, "platform-multi-region"),
    ("prod", observability_off, "platform-service-monitor"),
    ("prod", unprotected, "aws-eks-private-endpoint"),
]


@pytest.mark.parametrize(("environment", "mutate", "policy"), BROKEN, ids=[f"{e}-{m.__name__}" for e, m, _ in BROKEN])
def test_broken_environment_fails_with_the_expected_policy(environment, mutate, policy):
    violations = mandatory(evaluate(plan_with(environment, mutate)))
    assert violations, f"{mutate.__name__} should be caught"
    assert {v["policy"] for v in violations} == {policy}


def edited_plan(environment: str, edit: Callable[[PlannedResource], PlannedResource | None]) -> Plan:
    """The shipped plan with recorded resources edited (or dropped, when `edit` returns None): for breakage the
    environment file cannot express, as if a component regressed."""
    base = plan_of(environment)
    resources = [edit(dataclasses.replace(r, inputs=copy.deepcopy(r.inputs))) for r in base.resources]
    return Plan(base.environment, base.spec, [r for r in resources if r is not None], list(base.notes))


def _without_network_policies(r: PlannedResource) -> PlannedResource | None:
    return None if r.type.endswith(":NetworkPolicy") else r


def _image_by_tag(r: PlannedResource) -> PlannedResource:
    if r.type == "kubernetes:apps/v1:Deployment" and r.inputs["metadata"]["labels"].get(
            "app.kubernetes.io/component") == "model-server":
        r.inputs["spec"]["template"]["spec"]["containers"][0]["image"] = "vllm/vllm-openai:latest"
    return r


def _public_service(r: PlannedResource) -> PlannedResource:
    if r.type == "kubernetes:core/v1:Service":
        r.inputs["spec"]["type"] = "LoadBalancer"
    return r


def _mutable_registry(r: PlannedResource) -> PlannedResource:
    if r.type == "aws:ecr/repository:Repository":
        r.inputs["imageTagMutability"] = "MUTABLE"
    return r


def _without_default_deny(r: PlannedResource) -> PlannedResource | None:
    return None if r.type.endswith(":NetworkPolicy") and r.inputs["metadata"]["name"] == "default-deny" else r


def _prometheus_open_to_all(r: PlannedResource) -> PlannedResource:
    """Prometheus' own policy also admits every pod of every namespace on its write port (the guard's 9092)."""
    if (r.type.endswith(":NetworkPolicy") and r.inputs["metadata"]["namespace"] == "monitoring"
            and r.inputs["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "prometheus"):
        r.inputs["spec"]["ingress"].append({"from": [{"namespaceSelector": {}}], "ports": [{"port": 9092}]})
    return r


def _grafana_load_balancer(r: PlannedResource) -> PlannedResource:
    if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["chart"] == "kube-prometheus-stack":
        r.inputs["values"]["grafana"]["service"] = {"type": "LoadBalancer"}
    return r


@pytest.mark.parametrize(("edit", "policies"), [
    (_without_network_policies, {"k8s-network-policy", "k8s-namespace-default-deny",
                                 "platform-remote-write-restricted"}),
    (_image_by_tag, {"k8s-image-digest"}),
    (_public_service, {"k8s-no-public-load-balancer"}),
    (_mutable_registry, {"aws-ecr-immutable-tags"}),
    (_without_default_deny, {"k8s-namespace-default-deny"}),
    (_prometheus_open_to_all, {"platform-remote-write-restricted"}),
    (_grafana_load_balancer, {"platform-monitoring-not-exposed"}),
])
def test_broken_component_output_fails_with_the_expected_policy(edit, policies):
    violations = mandatory(evaluate(edited_plan("prod", edit)))
    assert violations and {v["policy"] for v in violations} == policies


def _buckets_program() -> None:
    """Two buckets the pulumi-aws v7 way: `weights` with its public access block, encryption and versioning as
    separate resources referring to `bucket.id`, and `logs` with none of them."""
    import pulumi_aws as aws

    weights = aws.s3.Bucket("weights", tags=TAGS)
    aws.s3.BucketPublicAccessBlock("weights", bucket=weights.id, block_public_acls=True, block_public_policy=True,
                                   ignore_public_acls=True, restrict_public_buckets=True)
    aws.s3.BucketServerSideEncryptionConfiguration("weights", bucket=weights.id, rules=[
        {"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}}])
    aws.s3.BucketVersioning("weights", bucket=weights.id, versioning_configuration={"status": "Enabled"})
    aws.s3.Bucket("logs", tags=TAGS)


def test_bucket_settings_pair_with_their_bucket_in_a_planned_program():
    from llmplane.stacks.environments import read_stack_config
    from llmplane.stacks.plan import run_plan

    plan = run_plan(read_stack_config("dev"), program=_buckets_program)
    found = {(v["policy"], v["urn"].rsplit("::", 1)[-1]) for v in evaluate(plan)}
    assert found == {("aws-s3-private", "logs"), ("aws-s3-encrypted", "logs"), ("aws-s3-versioned", "logs")}


# ---------------------------------------------------------------------------------------------- enforcement config


def test_policy_config_prod_is_all_mandatory_and_local_advisory(capsys):
    for environment, level in (("prod", "mandatory"), ("local", "advisory")):
        assert main(["policy-config", environment]) == 0
        config = json.loads(capsys.readouterr().out)
        assert list(config) == [r.name for r in RULES]
        assert all(v == {"enforcementLevel": level, "environment": environment} for v in config.values())


def test_policy_config_writes_a_file(capsys, tmp_path):
    out = tmp_path / "prod.json"
    assert main(["policy-config", "prod", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["k8s-image-digest"]["enforcementLevel"] == "mandatory"
    assert str(out) in capsys.readouterr().err


def _spec_with(overrides: dict[str, str], enforcement: str = "mandatory"):
    return plan_of("dev").spec.model_copy(update={"policy": Policy(enforcement=enforcement, overrides=overrides)})


def test_overrides_set_levels_per_policy():
    config = pack_config(_spec_with({"k8s-image-digest": "disabled", "aws-log-retention": "advisory"}))
    assert config["k8s-image-digest"]["enforcementLevel"] == "disabled"
    assert config["aws-log-retention"]["enforcementLevel"] == "advisory"
    assert config["k8s-probes"]["enforcementLevel"] == "mandatory"


def test_an_override_naming_no_policy_is_an_error_with_a_suggestion():
    with pytest.raises(SpecError) as error:
        pack_config(_spec_with({"k8s-image-digests": "disabled"}))
    assert "policy.overrides.k8s-image-digests" in error.value.render()
    assert "did you mean 'k8s-image-digest'?" in error.value.render()


def test_evaluator_applies_levels_and_skips_disabled_policies():
    bad = PlannedResource(DEPLOY.urn, DEPLOY.type, "d", "", patched(DEPLOY, (C + ("image",), "vllm:latest"),
                                                                      (C + ("readinessProbe",), DELETE)).props)
    spec = _spec_with({"k8s-image-digest": "disabled", "k8s-probes": "advisory"})
    found = evaluate(Plan("dev", spec, [bad]))
    assert "k8s-image-digest" not in {v["policy"] for v in found}
    assert {v["enforcement"] for v in found if v["policy"] == "k8s-probes"} == {"advisory"}
    assert {v["enforcement"] for v in found if v["policy"] == "k8s-network-policy"} == {"mandatory"}


def test_plan_exits_3_on_a_mandatory_violation_and_names_it(capsys, tmp_path):
    text = (ENVIRONMENTS / "Pulumi.prod.yaml").read_text()
    assert "llmplane:protect: true\n" in text
    (tmp_path / "Pulumi.prod.yaml").write_text(text.replace("llmplane:protect: true\n", "llmplane:protect: false\n"))
    assert main(["plan", "prod", "--environments", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    assert "MANDATORY violations" in out
    assert "[aws-eks-private-endpoint] EKS cluster aws-use1-eks: endpointPublicAccess is true in prod" in out


def test_plan_json_lists_policy_verdicts(capsys):
    assert main(["plan", "dev", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["policies"] == evaluate(plan_of("dev"))


# ---------------------------------------------------------------------------------------------- the CrossGuard pack


def test_pack_has_one_policy_per_rule():
    policies = build_policies()
    assert [p.name for p in policies] == [r.name for r in RULES]
    for policy, rule in zip(policies, RULES, strict=True):
        assert isinstance(policy, StackValidationPolicy if rule.is_stack_rule else ResourceValidationPolicy)
        assert policy.description == rule.description
        assert policy.remediation_steps == rule.remediation
        assert policy.enforcement_level is None  # the pack's default (advisory) or the config file decides
        assert (policy.config_schema is not None) == rule.uses_environment
        if rule.uses_environment:
            assert "environment" in policy.config_schema.properties


def test_pack_context_falls_back_to_the_stack_in_the_urn():
    assert context({"environment": "staging"}, ["urn:pulumi:prod::llmplane::x::y"]).environment == "staging"
    assert context(None, ["urn:pulumi:dev::llmplane::x::y"]).environment == "dev"
    assert context({}, []).environment is None


def test_plain_unwraps_crossguard_props():
    from pulumi_policy.proxy import unknown_checking_proxy

    props = unknown_checking_proxy({"a": {"b": [1.0, UNKNOWN_STRING_VALUE, {"c": 2.5}]}, "d": "x"})
    assert plain(props) == {"a": {"b": [1, UNKNOWN, {"c": 2.5}]}, "d": "x"}


def _struct(props: dict) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


@pytest.fixture(scope="module")
def analyzer():
    """The pack as the engine runs it (`python -m pulumi.policy <engine> policies`), reached over gRPC."""
    process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "policies"],
                               cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit(), process.stderr.read()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _configure(stub, environment: str) -> None:
    config = pack_config(plan_of(environment).spec)
    stub.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={
        name: analyzer_pb2.PolicyConfig(
            enforcementLevel=analyzer_pb2.MANDATORY if value["enforcementLevel"] == "mandatory"
            else analyzer_pb2.ADVISORY,
            properties=_struct({"environment": value["environment"]}),
        )
        for name, value in config.items()
    }))


def test_engine_sees_the_pack_named_llmplane_with_every_policy(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "llmplane"
    assert [p.name for p in info.policies] == [r.name for r in RULES]
    assert all(p.enforcementLevel == analyzer_pb2.ADVISORY for p in info.policies)
    assert all(p.remediation_steps for p in info.policies)


def test_engine_run_judges_resources_with_the_same_rules(analyzer):
    _configure(analyzer, "prod")
    deployment = patched(DEPLOY, (C + ("image",), "vllm/vllm-openai:latest"),
                         (POD + ("serviceAccountName",), UNKNOWN_STRING_VALUE))
    response = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(
        type=deployment.type, urn=deployment.urn, name=deployment.name, properties=_struct(dict(deployment.props))))
    by_policy = {d.policyName: d for d in response.diagnostics}
    assert set(by_policy) == {"k8s-image-digest"}, [d.message for d in response.diagnostics]
    assert by_policy["k8s-image-digest"].enforcementLevel == analyzer_pb2.MANDATORY
    assert "not pinned by digest" in by_policy["k8s-image-digest"].message

    # A preview: the bucket's id is unknown, the engine tells which bucket each setting's `bucket` comes from.
    settings = [patched(r, (("bucket",), UNKNOWN_STRING_VALUE)) for r in (PAB, SSE, VERSIONING)]
    depends = {"bucket": analyzer_pb2.AnalyzerPropertyDependencies(urns=[BUCKET.urn])}
    resources = [DEPLOY, SERVICE, MONITOR, ALERTS, USE1, BUCKET, *settings]
    stack = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=r.type, urn=r.urn, name=r.name, properties=_struct(dict(r.props)),
                                      propertyDependencies=depends if r in settings else {})
        for r in resources
    ]))
    found = {(d.policyName, d.urn) for d in stack.diagnostics}
    assert found == {("k8s-network-policy", DEPLOY.urn), ("platform-multi-region", "")}


# ---------------------------------------------------------------------------------------------- the real engine


def test_real_engine_runs_the_pack_on_the_local_stack_and_agrees_with_the_offline_plan(tmp_path):
    from tests.engine import Engine

    render = tmp_path / "render"
    engine = Engine(tmp_path, lambda cluster: cluster.update(renderDir=str(render)))
    offline = evaluate(plan_of("local"))
    assert offline, "the local stack is expected to have an advisory finding to compare"
    config = pack_config(plan_of("local").spec)
    for violation in offline:  # make what the offline plan finds mandatory: the engine must now refuse
        config[violation["policy"]]["enforcementLevel"] = "mandatory"
    config_file = tmp_path / "policy-config.json"
    config_file.write_text(json.dumps(config))
    done = subprocess.run(
        ["pulumi", "preview", "--stack", "local", "--config-file", str(engine.config),
         "--policy-pack", "policies", "--policy-pack-config", str(config_file)],
        cwd=PROJECT_ROOT, env=engine.env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert "llmplane@v0.1.0" in done.stdout, done.stdout + done.stderr
    reported = re.findall(r"- \[(mandatory|advisory)\]\s+(\S+)\s+\((\S+): (\S+)\)", done.stdout)
    by_urn = {r.urn: r for r in plan_of("local").resources}
    expected = {("mandatory", v["policy"], by_urn[v["urn"]].type, by_urn[v["urn"]].name) for v in offline if v["urn"]}
    assert set(reported) == expected, done.stdout
    assert done.returncode != 0
