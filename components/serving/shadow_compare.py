"""ShadowComparator: what a model's shadow versions would have answered, compared with stable, users unexposed.

The model's HTTPRoute mirrors a share of its requests to this service instead of to each shadow
(`mirror_backend_ref`); the server (`scripts/shadow_compare.py`) answers the mirror at once, calls stable and
every shadow itself with the same body, and exports per model, shadow version and arm the latency, output
tokens, refusals, exact agreement and token-level ROUGE-L similarity the experiment report reads. One mirrored
request costs one more stable generation (the gateway never hands a mirror the user's answer): the mirror's
percent bounds that cost.

Runs on the official Python image with prometheus-client and rapidfuzz installed by an init container from
hash-pinned wheels (`pip --require-hashes`), like the feedback service and for its reasons: a vLLM image would
make the policy pack take it for a model server, and 10 GB to start a small server on a CPU node is slow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import pods
from llmplane.components.options import children_of
from llmplane.facts.namespaces import GATEWAY_NAMESPACE

from .engine_args import VLLM_PORT
from .feedback import DEPS_DIR, PROMETHEUS_CLIENT, PYTHON_IMAGE
from .model_cache import SERVING_UID
from .vllm_service import MONITORING_NAMESPACE, resource_name

SCRIPT = Path(__file__).resolve().parent / "scripts" / "shadow_compare.py"
"""The server the pod runs, shipped in a ConfigMap."""
API_PORT = 8080
"""Port the gateway mirrors to."""
METRICS_PORT = 9090
"""Port Prometheus scrapes."""
RAPIDFUZZ = ("rapidfuzz==3.14.6"
             " --hash=sha256:0debb5f43662ea84d2f0228a0c7407ff647f9c3d13f3b692efff0cde46eebce0"
             " --hash=sha256:96a548979cd939b2c69358a0f5088a408524fbf7454f04bf90939fa971e64310")
"""The similarity's library, pinned to PyPI's CPython 3.12 manylinux_2_28 wheels (x86_64, then aarch64): the
image's Python and glibc."""
POD_LABELS = {"app.kubernetes.io/name": "shadow-compare"}
"""Labels every comparator pod carries: what a compared version's NetworkPolicy admits to its vLLM port."""


def comparator_name(model: str) -> str:
    """Kubernetes name of a model's comparator objects."""
    return f"shadow-compare-{model}".lower()[:63].rstrip("-")


def mirror_backend_ref(model: str) -> dict:
    """The backendRef the model's route mirrors to (its RequestMirror filter), in place of the shadows."""
    return {"name": comparator_name(model), "port": API_PORT}


@dataclass(frozen=True)
class ShadowComparatorArgs:
    """The model, its stable version and the shadows compared with it."""

    model_name: str
    """Model whose versions are compared."""
    stable_version: str
    """The version every shadow is compared with; its Service is called directly."""
    shadow_versions: Sequence[str]
    """The shadows, each called directly at its Service."""
    namespace: pulumi.Input[str]
    """The serving namespace, where the versions' Services are."""
    gateway_namespace: pulumi.Input[str] = GATEWAY_NAMESPACE
    """Namespace of the gateway's proxies: the only callers admitted."""
    queue: int = 32
    """Mirrored requests held while the arms answer; more are dropped and counted."""
    workers: int = 4
    """Comparisons in flight: each holds one generation per arm."""
    service_monitor: bool = True
    """Whether Prometheus Operator scrapes it (a ServiceMonitor): where the environment runs it."""

    def __post_init__(self) -> None:
        if not self.shadow_versions:
            raise ValueError(f"ShadowComparator {self.model_name}: no shadow version; deploy a comparator only for "
                             "a model with a version of role shadow")
        if self.stable_version in self.shadow_versions:
            raise ValueError(f"ShadowComparator {self.model_name}: {self.stable_version} is both stable and a "
                             "shadow; compare a shadow with a different stable version")
        if self.queue < 1 or self.workers < 1:
            raise ValueError(f"ShadowComparator {self.model_name}: queue {self.queue} and workers {self.workers} "
                             "must be at least 1")


def server_config(args: ShadowComparatorArgs) -> str:
    """The server's configuration file: each arm's version and Service URL (same namespace)."""
    def arm(version: str) -> dict:
        return {"version": version, "url": f"http://{resource_name(args.model_name, version)}:{VLLM_PORT}"}

    return json.dumps({"model": args.model_name, "stable": arm(args.stable_version),
                       "shadows": [arm(v) for v in sorted(args.shadow_versions)]}, sort_keys=True)


class ShadowComparator(pulumi.ComponentResource):
    """Deployment, Service, NetworkPolicy and (where Prometheus Operator runs) ServiceMonitor of one model's shadow
    comparator."""

    service_name: pulumi.Output[str]
    """Name of the ClusterIP Service the route mirrors to."""

    def __init__(self, name: str, args: ShadowComparatorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:ShadowComparator", name, None, opts)
        child = children_of(self, opts)
        kname = comparator_name(args.model_name)
        labels = k8s_labels(name="shadow-compare", instance=kname, component="experiment-shadow")
        selector = {**POD_LABELS, "app.kubernetes.io/instance": kname}
        meta = {"name": kname, "namespace": args.namespace, "labels": labels}
        config = server_config(args)
        script = SCRIPT.read_text(encoding="utf-8")
        files = k8s.core.v1.ConfigMap(
            f"{name}-files", metadata=meta, opts=child,
            data={"shadow_compare.py": script, "config.json": config,
                  "requirements.txt": f"{PROMETHEUS_CLIENT}\n{RAPIDFUZZ}\n"})
        account = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=meta, automount_service_account_token=False,
                                             opts=child)
        hardened = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
                    "capabilities": {"drop": ["ALL"]}}
        env = [{"name": "HOME", "value": "/tmp"}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
               {"name": "PYTHONUNBUFFERED", "value": "1"}]
        mounts = [{"name": "files", "mountPath": "/etc/llmplane-shadow", "readOnly": True},
                  {"name": "deps", "mountPath": DEPS_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
        probe = {"httpGet": {"path": "/healthz", "port": "api"}, "periodSeconds": 10, "timeoutSeconds": 2}
        # The queue holds up to `queue` bodies of at most 2 MiB each, beside the answers being compared.
        memory = f"{256 + 4 * args.queue}Mi"
        k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=meta, opts=child,
            spec={
                # One pod: its queue is the bound on the extra load, a second pod would double it.
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels, "annotations": {
                        "llmplane.dev/config-sha256": hashlib.sha256((config + script).encode()).hexdigest()}},
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
                                        "--target", DEPS_DIR, "-r", "/etc/llmplane-shadow/requirements.txt"],
                            "env": env, "volumeMounts": mounts, "securityContext": hardened,
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                          "limits": {"cpu": "500m", "memory": "256Mi"}},
                        }],
                        "containers": [{
                            "name": "compare",
                            "image": PYTHON_IMAGE,
                            "command": ["python3", "/etc/llmplane-shadow/shadow_compare.py",
                                        "--config", "/etc/llmplane-shadow/config.json",
                                        "--port", str(API_PORT), "--metrics-port", str(METRICS_PORT),
                                        "--queue", str(args.queue), "--workers", str(args.workers)],
                            "env": [*env, {"name": "PYTHONPATH", "value": DEPS_DIR}],
                            "ports": [{"name": "api", "containerPort": API_PORT, "protocol": "TCP"},
                                      {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                            "readinessProbe": probe, "livenessProbe": {**probe, "failureThreshold": 6},
                            "volumeMounts": mounts, "securityContext": hardened,
                            "resources": {"requests": {"cpu": "250m", "memory": memory},
                                          "limits": {"cpu": "1", "memory": memory}},
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

        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol", metadata=meta, opts=child,
            spec={
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress", "Egress"],
                # Mirrored requests only from the gateway's proxies, scrapes only from monitoring.
                "ingress": [{"from": [pods(args.gateway_namespace)],
                             "ports": [{"port": API_PORT, "protocol": "TCP"}]},
                            {"from": [pods(MONITORING_NAMESPACE)],
                             "ports": [{"port": METRICS_PORT, "protocol": "TCP"}]}],
                # Out to the model's vLLM pods, to resolve names, and to fetch the pinned wheels when it starts.
                "egress": [{"to": [{"podSelector": {"matchLabels": {"llmplane.dev/model": args.model_name}}}],
                            "ports": [{"port": VLLM_PORT, "protocol": "TCP"}]},
                           {"to": [pods("kube-system")],
                            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                           {"ports": [{"port": 443, "protocol": "TCP"}]}],
            })
        if args.service_monitor:
            k8s.apiextensions.CustomResource(
                f"{name}-servicemonitor", api_version="monitoring.coreos.com/v1", kind="ServiceMonitor",
                metadata=meta, opts=child,
                # The series carry model and version as the server's own labels (the pod has neither).
                spec={"selector": {"matchLabels": selector},
                      "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}]})
        self.service_name = service.metadata.name
        self.register_outputs({"service_name": self.service_name})
