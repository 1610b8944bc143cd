"""FeedbackService: the quality and business metrics of an experiment's arms. Clients post a rating of an answer
to `/feedback` on the gateway, authenticated with their tenant key like a model call, and a small
prometheus-client server (`scripts/feedback_server.py`) counts it per model, version and tenant.

Why the official Python image plus a hash-pinned prometheus-client, not the vLLM image that already has both:
the policy pack treats any workload running a vLLM image as a model server (it would demand a model and version
label this service has none of), and a 10 GB image for a 50-line server slows every start on a CPU node. An init
container installs the one wheel with `pip --require-hashes`, so what runs is exactly the reviewed file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.gateway.route_refs import EG_API
from llmplane.components.gateway.tenant_budgets import api_key_auth
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import pods
from llmplane.components.options import children_of
from llmplane.facts.namespaces import GATEWAY_NAMESPACE

from .model_cache import SERVING_UID
from .vllm_service import MONITORING_NAMESPACE

SCRIPT = Path(__file__).resolve().parent / "scripts" / "feedback_server.py"
"""The server the pods run, shipped in a ConfigMap."""
NAME = "llmplane-feedback"
"""Name of the Deployment, Service, route and their policies."""
PATH = "/feedback"
"""Path clients post to on the gateway's hostnames (the server answers the same path)."""
API_PORT = 8080
"""Port the gateway calls."""
METRICS_PORT = 9090
"""Port Prometheus scrapes."""
PYTHON_IMAGE = "python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea"
"""The official image's multi-arch index digest, as pinned in several public Dockerfiles (e.g. those beside the
linux/amd64 child sha256:2fe5997d... they verified against it)."""
PROMETHEUS_CLIENT = ("prometheus-client==0.26.0 --hash=sha256:"
                     "fa93d06737aa02bacd05794768508bb97d2fbee28cb3bca04eaae92f0ca953d6")
"""The one dependency, as a pip requirement pinned to PyPI's wheel (prometheus_client-0.26.0-py3-none-any.whl)."""
DEPS_DIR = "/opt/llmplane/deps"
"""Where the init container installs it and the server imports it from."""


@dataclass(frozen=True)
class FeedbackServiceArgs:
    """What may be rated, by whom, and the gateway that admits the posts."""

    versions: Mapping[str, Sequence[str]]
    """Per model under experiment, its versions that answer users: posts naming others are refused."""
    tenants: Mapping[str, Sequence[str]]
    """Per tenant that may post, the models under experiment it may call; its API keys authenticate the route."""
    namespace: pulumi.Input[str]
    """The serving namespace: the tenants' key Secrets live there, and only its routes attach to the Gateway."""
    hostnames: Sequence[str]
    """Hostnames the route answers: the global one and the cluster's regional one."""
    gateway_name: pulumi.Input[str]
    """Gateway the route attaches to."""
    gateway_namespace: pulumi.Input[str] = GATEWAY_NAMESPACE
    """Namespace of that Gateway: the only one whose pods may call the service."""
    replicas: int = 2
    """Pods serving posts (counters are summed across them)."""

    def __post_init__(self) -> None:
        if not self.versions:
            raise ValueError("FeedbackService: versions is empty; give the versions of at least one model under "
                             "experiment, or do not deploy the service")
        empty = [model for model, versions in self.versions.items() if not versions]
        if empty:
            raise ValueError(f"FeedbackService: versions of {', '.join(empty)} is empty; give the versions that "
                             "answer users")
        if not self.tenants:
            raise ValueError("FeedbackService: tenants is empty; the tenant of a rating comes from its API key, so "
                             "give the tenants that call the models under experiment")
        unknown = sorted({m for models in self.tenants.values() for m in models} - set(self.versions))
        if unknown:
            raise ValueError(f"FeedbackService: tenants name {', '.join(unknown)}, which versions does not list; "
                             "list only models under experiment")
        if self.replicas < 1:
            raise ValueError(f"FeedbackService: replicas is {self.replicas}; give at least 1")


def server_config(args: FeedbackServiceArgs) -> str:
    """The server's configuration file: deployed versions and tenants' models."""
    return json.dumps({"models": {m: sorted(v) for m, v in sorted(args.versions.items())},
                       "tenants": {t: sorted(m) for t, m in sorted(args.tenants.items())}}, sort_keys=True)


class FeedbackService(pulumi.ComponentResource):
    """Deployment, Service, ServiceMonitor, NetworkPolicy and an authenticated `/feedback` route."""

    service_name: pulumi.Output[str]
    """Name of the ClusterIP Service behind the route."""
    route_name: pulumi.Output[str]
    """Name of the HTTPRoute clients post through."""

    def __init__(self, name: str, args: FeedbackServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:FeedbackService", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="feedback", instance=NAME, component="experiment-feedback")
        selector = {"app.kubernetes.io/name": "feedback", "app.kubernetes.io/instance": NAME}
        meta = {"name": NAME, "namespace": args.namespace, "labels": labels}
        files = k8s.core.v1.ConfigMap(
            f"{name}-files", metadata=meta, opts=child,
            data={"feedback_server.py": SCRIPT.read_text(encoding="utf-8"), "config.json": server_config(args),
                  "requirements.txt": PROMETHEUS_CLIENT + "\n"})
        account = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=meta, automount_service_account_token=False,
                                             opts=child)
        hardened = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
                    "capabilities": {"drop": ["ALL"]}}
        small = {"cpu": "100m", "memory": "128Mi"}
        probe = {"httpGet": {"path": "/healthz", "port": "api"}, "periodSeconds": 10, "timeoutSeconds": 2}
        env = [{"name": "HOME", "value": "/tmp"}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
               {"name": "PYTHONUNBUFFERED", "value": "1"}]
        mounts = [{"name": "files", "mountPath": "/etc/llmplane-feedback", "readOnly": True},
                  {"name": "deps", "mountPath": DEPS_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
        k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=meta, opts=child,
            spec={
                "replicas": args.replicas,
                "selector": {"matchLabels": selector},
                # A new configuration (a version deployed or removed) or server restarts the pods.
                "template": {
                    "metadata": {"labels": labels, "annotations": {"llmplane.dev/config-sha256": hashlib.sha256(
                        (server_config(args) + SCRIPT.read_text(encoding="utf-8")).encode()).hexdigest()}},
                    "spec": {
                        "serviceAccountName": account.metadata.name,
                        "automountServiceAccountToken": False,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": SERVING_UID,
                                            "runAsGroup": SERVING_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                        "initContainers": [{
                            "name": "install",
                            "image": PYTHON_IMAGE,
                            "command": ["python3", "-m", "pip", "install", "--no-cache-dir", "--no-deps",
                                        "--only-binary=:all:", "--require-hashes", "--disable-pip-version-check",
                                        "--target", DEPS_DIR, "-r", "/etc/llmplane-feedback/requirements.txt"],
                            "env": env, "volumeMounts": mounts, "securityContext": hardened,
                            "resources": {"requests": small, "limits": small},
                        }],
                        "containers": [{
                            "name": "feedback",
                            "image": PYTHON_IMAGE,
                            "command": ["python3", "/etc/llmplane-feedback/feedback_server.py",
                                        "--config", "/etc/llmplane-feedback/config.json",
                                        "--port", str(API_PORT), "--metrics-port", str(METRICS_PORT)],
                            "env": [*env, {"name": "PYTHONPATH", "value": DEPS_DIR}],
                            "ports": [{"name": "api", "containerPort": API_PORT, "protocol": "TCP"},
                                      {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                            "readinessProbe": probe, "livenessProbe": {**probe, "failureThreshold": 6},
                            "volumeMounts": mounts, "securityContext": hardened,
                            "resources": {"requests": small, "limits": small},
                        }],
                        "volumes": [{"name": "files", "configMap": {"name": files.metadata.name}},
                                    {"name": "deps", "emptyDir": {"sizeLimit": "64Mi"}},
                                    {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                    },
                },
            })
        service = k8s.core.v1.Service(
            f"{name}-service", metadata=meta, opts=child,
            spec={"type": "ClusterIP", "selector": selector,
                  "ports": [{"name": "api", "port": API_PORT, "targetPort": "api", "protocol": "TCP"},
                            {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}]})
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=meta, opts=child,
                                          spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}})

        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol", metadata=meta, opts=child,
            spec={
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress", "Egress"],
                # Posts only from the gateway's proxies, scrapes only from monitoring: each on its own port.
                "ingress": [{"from": [pods(args.gateway_namespace)],
                             "ports": [{"port": API_PORT, "protocol": "TCP"}]},
                            {"from": [pods(MONITORING_NAMESPACE)],
                             "ports": [{"port": METRICS_PORT, "protocol": "TCP"}]}],
                # Out only to resolve and fetch the pinned wheel (HTTPS) when a pod starts.
                "egress": [{"to": [pods("kube-system")],
                            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                           {"ports": [{"port": 443, "protocol": "TCP"}]}],
            })
        k8s.apiextensions.CustomResource(
            f"{name}-servicemonitor", api_version="monitoring.coreos.com/v1", kind="ServiceMonitor",
            metadata=meta, opts=child,
            # The series carry model and version as the server's own labels (not the pod's).
            spec={"selector": {"matchLabels": selector},
                  "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}]})
        route = k8s.apiextensions.CustomResource(
            f"{name}-route", api_version="gateway.networking.k8s.io/v1", kind="HTTPRoute", metadata=meta, opts=child,
            spec={"parentRefs": [{"name": args.gateway_name, "namespace": args.gateway_namespace}],
                  "hostnames": list(args.hostnames),
                  "rules": [{"matches": [{"path": {"type": "Exact", "value": PATH}, "method": "POST"}],
                             "backendRefs": [{"name": service.metadata.name, "port": API_PORT}]}]})
        k8s.apiextensions.CustomResource(
            f"{name}-auth", api_version=EG_API, kind="SecurityPolicy", opts=child,
            metadata={**meta, "name": f"{NAME}-tenants",
                      "labels": k8s_labels(name="gateway", instance=NAME, component="authentication")},
            spec={"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": NAME}],
                  "apiKeyAuth": api_key_auth(sorted(args.tenants))})
        self.service_name = service.metadata.name
        self.route_name = route.metadata.apply(lambda m: m["name"])
        self.register_outputs({"service_name": self.service_name, "route_name": self.route_name})
