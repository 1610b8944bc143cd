"""Kubernetes policies: hardened, observable, disruption-safe workloads and no public entry points."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .base import (
    UNKNOWN,
    WORKLOAD_TYPES,
    Context,
    Finding,
    ResourceView,
    Rule,
    as_dict,
    as_list,
    containers,
    display,
    get,
    gpu_container,
    is_false,
    is_gpu_resource,
    is_true,
    is_vllm,
    is_workload,
    k8s_kind,
    labels_of,
    metadata,
    number,
    pod_template,
    same_namespace,
    selector_matches,
)

# ------------------------------------------------------------------ requests and limits


def _same_quantity(a: Any, b: Any) -> bool:
    na, nb = number(a), number(b)
    return na == nb if na is not None and nb is not None else str(a) == str(b)


def requests_and_limits(view: ResourceView, _: Context) -> Iterator[str]:
    spec, _labels = pod_template(view)
    for container in containers(spec):
        name = container.get("name", "?")
        resources = as_dict(container.get("resources"))
        if resources == {} and container.get("resources") == UNKNOWN:
            continue
        requests, limits = as_dict(resources.get("requests")), as_dict(resources.get("limits"))
        missing = [f"{part}.{res}" for part, values in (("requests", requests), ("limits", limits))
                   for res in ("cpu", "memory") if res not in values]
        if missing:
            yield f"{display(view)}: container '{name}' sets no {', '.join(missing)}"
        for resource in sorted({*requests, *limits}):
            if not is_gpu_resource(resource):
                continue
            if resource not in limits:
                yield f"{display(view)}: container '{name}' requests {resource} without a limit"
            elif resource in requests and not _same_quantity(requests[resource], limits[resource]):
                yield (f"{display(view)}: container '{name}' requests {requests[resource]} {resource} "
                       f"but limits {limits[resource]}; GPUs cannot be overcommitted")


# ------------------------------------------------------------------ probes


PAUSE_IMAGES = ("registry.k8s.io/pause:", "registry.k8s.io/pause@")
"""The Kubernetes pause image: a container that sleeps and serves nothing."""


def probes(view: ResourceView, _: Context) -> Iterator[str]:
    spec, _labels = pod_template(view)
    if k8s_kind(view.type) in ("Job", "CronJob"):
        return
    for container in containers(spec, init=False):
        if str(container.get("image", "")).startswith(PAUSE_IMAGES):
            continue  # runs nothing (a placeholder holding a slot, a pod kept after its init work): nothing to probe
        wanted = ["readinessProbe", "livenessProbe"] + (["startupProbe"] if gpu_container(container) else [])
        missing = [probe for probe in wanted if not container.get(probe)]
        if missing:
            gpu = " (a GPU container: model load needs a startupProbe)" if "startupProbe" in missing else ""
            yield f"{display(view)}: container '{container.get('name', '?')}' has no {', '.join(missing)}{gpu}"


# ------------------------------------------------------------------ security context


def _container_setting(pod_spec: Mapping[str, Any], container: Mapping[str, Any], key: str) -> Any:
    """A securityContext setting as it applies to a container: its own, else the pod's."""
    own = get(container, "securityContext", key)
    return own if own is not None else get(pod_spec, "securityContext", key)


def ownership_setup(container: Mapping[str, Any]) -> bool:
    """An init container whose only power is CHOWN (every other capability dropped, no escalation): the one-shot
    hand-over of a host folder the kubelet created root-owned, e.g. the node model cache's."""
    context = container.get("securityContext") or {}
    capabilities = context.get("capabilities") or {}
    return ("ALL" in as_list(capabilities.get("drop")) and set(as_list(capabilities.get("add"))) <= {"CHOWN"}
            and is_false(context.get("allowPrivilegeEscalation")))


def run_as_non_root(view: ResourceView, _: Context) -> Iterator[str]:
    spec, _labels = pod_template(view)
    setup = [c for c in as_list(spec.get("initContainers")) if isinstance(c, Mapping) and ownership_setup(c)]
    for container in containers(spec):
        name = container.get("name", "?")
        if any(container is c for c in setup):
            continue
        non_root = _container_setting(spec, container, "runAsNonRoot")
        user = number(_container_setting(spec, container, "runAsUser"))
        if user == 0:
            yield f"{display(view)}: container '{name}' runs as user 0 (root)"
        elif not is_true(non_root) and non_root != UNKNOWN:
            yield f"{display(view)}: container '{name}' does not set runAsNonRoot: true"


def no_privilege_escalation(view: ResourceView, _: Context) -> Iterator[str]:
    spec, _labels = pod_template(view)
    for container in containers(spec):
        value = get(container, "securityContext", "allowPrivilegeEscalation")
        if not is_false(value) and value != UNKNOWN:
            yield (f"{display(view)}: container '{container.get('name', '?')}' does not set "
                   "allowPrivilegeEscalation: false")


def no_privileged(view: ResourceView, _: Context) -> Iterator[str]:
    spec, _labels = pod_template(view)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if is_true(spec.get(key)):
            yield f"{display(view)}: the pod shares the node's namespaces ({key}: true)"
    for container in containers(spec):
        if is_true(get(container, "securityContext", "privileged")):
            yield f"{display(view)}: container '{container.get('name', '?')}' is privileged"


def read_only_root(view: ResourceView, _: Context) -> Iterator[str]:
    spec, _labels = pod_template(view)
    for container in containers(spec):
        value = get(container, "securityContext", "readOnlyRootFilesystem")
        if not is_true(value) and value != UNKNOWN:
            yield (f"{display(view)}: container '{container.get('name', '?')}' does not set "
                   "readOnlyRootFilesystem: true")


DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_digest(view: ResourceView, _: Context) -> Iterator[str]:
    spec, _labels = pod_template(view)
    for container in containers(spec):
        image = container.get("image")
        if image == UNKNOWN:
            continue
        if not isinstance(image, str) or not DIGEST.search(image):
            yield (f"{display(view)}: container '{container.get('name', '?')}' image {image!r} is not pinned "
                   "by digest")


# ------------------------------------------------------------------ disruption budgets


def _is_zero(value: Any) -> bool:
    return number(value) == 0 or (isinstance(value, str) and value.strip() in ("0%", "0"))


def pdb_not_zero(view: ResourceView, _: Context) -> Iterator[str]:
    spec = as_dict(view.props.get("spec"))
    if "maxUnavailable" in spec and _is_zero(spec["maxUnavailable"]):
        yield f"{display(view)}: maxUnavailable {spec['maxUnavailable']!r} blocks every node drain and upgrade"
    if isinstance(spec.get("minAvailable"), str) and spec["minAvailable"].strip() == "100%":
        yield f"{display(view)}: minAvailable '100%' blocks every node drain and upgrade"


# ------------------------------------------------------------------ network policies


def network_policy_per_workload(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    policies = [r for r in resources if k8s_kind(r.type) == "NetworkPolicy"]
    for workload in resources:
        if not is_workload(workload):
            continue
        _spec, labels = pod_template(workload)
        covered = any(
            same_namespace(policy, workload) and selector_matches(get(policy.props, "spec", "podSelector"), labels)
            for policy in policies
        )
        if not covered:
            yield Finding(workload.urn, f"{display(workload)}: no NetworkPolicy in its namespace selects its pods")


# ------------------------------------------------------------------ load balancers

INTERNAL_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": ("true",),
    "service.beta.kubernetes.io/aws-load-balancer-scheme": ("internal",),
    "networking.gke.io/load-balancer-type": ("internal",),
    "cloud.google.com/load-balancer-type": ("internal",),
    "service.beta.kubernetes.io/azure-load-balancer-internal": ("true",),
}
"""Annotations that keep a LoadBalancer Service off the internet, per cloud (values compared lowercase)."""


def no_public_load_balancer(view: ResourceView, _: Context) -> Iterator[str]:
    if get(view.props, "spec", "type") != "LoadBalancer":
        return
    annotations = as_dict(metadata(view).get("annotations"))
    internal = any(str(annotations.get(key, "")).lower() in values for key, values in INTERNAL_ANNOTATIONS.items())
    if not internal:
        yield (f"{display(view)}: a LoadBalancer Service without an internal annotation gets a public address; "
               "expose models through the Gateway")


# ------------------------------------------------------------------ labels

RECOMMENDED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")
MODEL_LABELS = ("llmplane.dev/model", "llmplane.dev/model-version")
NOT_OBJECTS = ("kubernetes:helm.sh/", "kubernetes:yaml", "kubernetes:kustomize")
"""Pulumi resources of the Kubernetes provider that are not themselves Kubernetes objects."""


def recommended_labels(view: ResourceView, _: Context) -> Iterator[str]:
    if view.type.startswith(NOT_OBJECTS) or "metadata" not in view.props and "kind" not in view.props:
        return
    if view.props.get("metadata") == UNKNOWN or metadata(view).get("labels") == UNKNOWN:
        return
    labels = labels_of(view)
    missing = [key for key in RECOMMENDED_LABELS if not labels.get(key)]
    if missing:
        yield f"{display(view)}: missing labels {', '.join(missing)}"
    if is_workload(view) and is_vllm(view):
        _spec, pod_labels = pod_template(view)
        for where, present in (("metadata", labels), ("pod template", pod_labels)):
            absent = [key for key in MODEL_LABELS if not present.get(key)]
            if absent:
                yield f"{display(view)}: a vLLM workload whose {where} lacks {', '.join(absent)}"


RULES = [
    Rule(
        name="k8s-resources-requests-limits",
        description="Every container sets CPU and memory requests and limits; GPUs are limited and requested "
        "exactly as many as limited.",
        remediation="Set resources.requests and resources.limits (cpu, memory) on every container; for GPUs set "
        "nvidia.com/gpu in limits, and in requests only with the same count.",
        resource_types=WORKLOAD_TYPES,
        check=requests_and_limits,
    ),
    Rule(
        name="k8s-probes",
        description="Every long-running container has a readiness and a liveness probe; GPU containers also a "
        "startup probe sized to the model's load time.",
        remediation="Add readinessProbe and livenessProbe (vLLM: GET /health); on GPU containers add a "
        "startupProbe whose periodSeconds x failureThreshold covers the worst-case model load.",
        resource_types=WORKLOAD_TYPES,
        check=probes,
    ),
    Rule(
        name="k8s-run-as-non-root",
        description="Containers run as a non-root user.",
        remediation="Set securityContext.runAsNonRoot: true (pod or container) and a non-zero runAsUser.",
        resource_types=WORKLOAD_TYPES,
        check=run_as_non_root,
    ),
    Rule(
        name="k8s-no-privilege-escalation",
        description="Containers cannot gain more privileges than their process started with.",
        remediation="Set securityContext.allowPrivilegeEscalation: false on every container.",
        resource_types=WORKLOAD_TYPES,
        check=no_privilege_escalation,
    ),
    Rule(
        name="k8s-no-privileged",
        description="No privileged containers and no pods sharing the node's network, PID or IPC namespace.",
        remediation="Remove securityContext.privileged: true and hostNetwork/hostPID/hostIPC; GPUs come from the "
        "device plugin, not from privileged mode.",
        resource_types=WORKLOAD_TYPES,
        check=no_privileged,
    ),
    Rule(
        name="k8s-read-only-root-filesystem",
        description="Containers run with a read-only root filesystem.",
        remediation="Set securityContext.readOnlyRootFilesystem: true and mount emptyDir volumes where the "
        "process writes (/tmp, caches, model cache).",
        resource_types=WORKLOAD_TYPES,
        check=read_only_root,
    ),
    Rule(
        name="k8s-image-digest",
        description="Container images are pinned by digest, so what was reviewed is what runs.",
        remediation="Reference images as registry/name:tag@sha256:<digest> (spec `images.vllm`).",
        resource_types=WORKLOAD_TYPES,
        check=image_digest,
    ),
    Rule(
        name="k8s-pdb-not-zero",
        description="A PodDisruptionBudget allows at least one voluntary disruption (maxUnavailable 0 or "
        "minAvailable 100% blocks node drains and cluster upgrades forever).",
        remediation="Use maxUnavailable: 1 (or a minAvailable below the replica count); protect capacity with "
        "more replicas, not with a budget that never allows eviction.",
        resource_types=("kubernetes:policy/*:PodDisruptionBudget",),
        check=pdb_not_zero,
    ),
    Rule(
        name="k8s-network-policy",
        description="Every workload's pods are selected by a NetworkPolicy in its namespace.",
        remediation="Add a NetworkPolicy whose podSelector matches the workload's pod template labels (or a "
        "namespace default-deny with podSelector: {}), allowing only the gateway and monitoring namespaces in.",
        resource_types=None,
        check=network_policy_per_workload,
    ),
    Rule(
        name="k8s-no-public-load-balancer",
        description="No LoadBalancer Service gets a public address.",
        remediation="Serve through the regional Gateway; if a LoadBalancer Service is needed, annotate it as "
        "internal (e.g. service.beta.kubernetes.io/aws-load-balancer-scheme: internal, "
        "networking.gke.io/load-balancer-type: Internal).",
        resource_types=("kubernetes:core/v1:Service",),
        check=no_public_load_balancer,
    ),
    Rule(
        name="k8s-recommended-labels",
        description="Every Kubernetes object carries app.kubernetes.io/name, part-of and managed-by; vLLM "
        "workloads also llmplane.dev/model and llmplane.dev/model-version on the object and its pods.",
        remediation="Build labels with components.labels.k8s_labels(...) and set them on metadata.labels (and on "
        "the pod template of workloads).",
        resource_types=("kubernetes:*",),
        check=recommended_labels,
    ),
]
