"""Platform policies: what llmplane promises across clouds (observability, regions, bounded GPU spend,
sane traffic splits, on-demand baseline, no secret in plain text)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from llmplane.facts.kubernetes import GPU_RESOURCE, GPU_TYPE_LABEL, POOL_LABEL

from .base import (
    SECRET,
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
    is_true,
    is_vllm,
    is_workload,
    k8s_kind,
    labels_of,
    map_selects,
    namespace_of,
    number,
    pod_template,
    same_namespace,
    same_scope,
    selector_matches,
)
from .gcp import GKE_NODE_POOL

GPU = GPU_RESOURCE
KARPENTER_NODE_POOL = "kubernetes:karpenter.sh/*:NodePool"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/*:HTTPRoute"

ALERT_RULES_REQUIRED = True
"""Also demand, where a model version is scraped (observability on), a PrometheusRule with vLLM alerts
(monitoring/alerts.yaml, provisioned per cluster) in its cluster. A switch, so a platform that routes
alerts elsewhere can turn the second half off."""


# ------------------------------------------------------------------ observability


def _monitor_selects_service(monitor: ResourceView, service: ResourceView) -> bool:
    spec = as_dict(monitor.props.get("spec"))
    namespaces = as_dict(spec.get("namespaceSelector"))
    if is_true(namespaces.get("any")):
        in_namespace = same_scope(monitor, service)
    elif namespaces.get("matchNames"):
        in_namespace = same_scope(monitor, service) and namespace_of(service) in as_list(namespaces["matchNames"])
    else:
        in_namespace = same_namespace(monitor, service)
    return in_namespace and selector_matches(spec.get("selector"), labels_of(service))


def _has_vllm_alerts(rule: ResourceView) -> bool:
    """A PrometheusRule with at least one alert on vLLM metrics (or on llmplane's vLLM recording rules)."""
    groups = get(rule.props, "spec", "groups")
    if groups == UNKNOWN:
        return True
    return any(
        "alert" in item and "vllm" in str(get(item, "expr", default=""))
        for group in as_list(groups) for item in as_list(get(group, "rules"))
    )


def served_and_monitored(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    services = [r for r in resources if k8s_kind(r.type) == "Service"]
    service_monitors = [r for r in resources if k8s_kind(r.type) == "ServiceMonitor"]
    pod_monitors = [r for r in resources if k8s_kind(r.type) == "PodMonitor"]
    alert_rules = [r for r in resources if k8s_kind(r.type) == "PrometheusRule" and _has_vllm_alerts(r)]
    for workload in resources:
        if not (is_workload(workload) and is_vllm(workload)):
            continue
        _spec, pod_labels = pod_template(workload)
        fronts = [s for s in services
                  if same_namespace(s, workload) and map_selects(get(s.props, "spec", "selector"), pod_labels)]
        scraped = any(_monitor_selects_service(m, s) for m in service_monitors for s in fronts) or any(
            same_namespace(m, workload) and selector_matches(get(m.props, "spec", "selector"), pod_labels)
            for m in pod_monitors
        )
        if not scraped:
            yield Finding(workload.urn, f"{display(workload)}: no ServiceMonitor scrapes this model version's "
                                        "metrics (no SLO, autoscaling signal or alert can see it)")
        elif ALERT_RULES_REQUIRED and not any(same_scope(r, workload) for r in alert_rules):
            yield Finding(workload.urn, f"{display(workload)}: metrics are scraped but its cluster has no "
                                        "PrometheusRule alerting on vLLM metrics")


# ------------------------------------------------------------------ regions


def _region_of_location(location: str) -> str:
    """GKE locations are regions or zones; a zone's region drops the trailing `-a`."""
    return re.sub(r"^([a-z]+-[a-z]+\d+)-[a-z]$", r"\1", location)


def regions(resources: Sequence[ResourceView]) -> set[str]:
    """Cloud regions the stack deploys to: AWS providers' regions and GKE clusters' locations."""
    found = set()
    for r in resources:
        if r.type == "pulumi:providers:aws":
            region = r.props.get("region")
            if isinstance(region, str) and region and region != UNKNOWN:
                found.add(f"aws:{region}")
        elif r.type == "gcp:container/cluster:Cluster":
            location = r.props.get("location")
            if isinstance(location, str) and location and location != UNKNOWN:
                found.add(f"gcp:{_region_of_location(location)}")
    return found


def multi_region(resources: Sequence[ResourceView], context: Context) -> Iterator[Finding]:
    if not context.is_prod:
        return
    found = regions(resources)
    if len(found) < 2:
        where = ", ".join(sorted(found)) or "no cloud region"
        yield Finding("", f"{context.environment or 'prod'} runs in {where}; a region outage would take "
                          "inference down")


# ------------------------------------------------------------------ GPU pools


def _karpenter_template(view: ResourceView) -> Mapping[str, Any]:
    return as_dict(get(view.props, "spec", "template"))


def _is_karpenter_gpu_pool(view: ResourceView) -> bool:
    template = _karpenter_template(view)
    labels = as_dict(get(template, "metadata", "labels"))
    taints = as_list(get(template, "spec", "taints"))
    requirements = as_list(get(template, "spec", "requirements"))
    return (
        POOL_LABEL in labels
        or GPU_TYPE_LABEL in labels
        or any(get(t, "key") == GPU for t in taints)
        or any(str(get(r, "key", default="")).startswith("karpenter.k8s.aws/instance-gpu") for r in requirements)
    )


def _gke_accelerators(view: ResourceView) -> list[Any]:
    return as_list(get(view.props, "nodeConfig", "guestAccelerators"))


def _gke_max(view: ResourceView) -> float | None:
    """Most nodes a GKE node pool can have; None when unbounded."""
    autoscaling = view.props.get("autoscaling")
    if autoscaling is None:
        count = number(view.props.get("nodeCount"))
        return count if count is not None else number(view.props.get("initialNodeCount")) or 1
    for key in ("totalMaxNodeCount", "maxNodeCount"):
        value = get(autoscaling, key)
        if value == UNKNOWN:
            return float("inf")
        if number(value) is not None:
            return number(value)
    return None


def gpu_pool_max(view: ResourceView, _: Context) -> Iterator[str]:
    if view.type == GKE_NODE_POOL:
        if not _gke_accelerators(view) or view.props.get("autoscaling") == UNKNOWN:
            return
        if _gke_max(view) is None:
            yield f"GKE node pool {view.name}: GPU pool autoscaling has no totalMaxNodeCount / maxNodeCount"
        return
    if not _is_karpenter_gpu_pool(view):
        return
    limit = get(view.props, "spec", "limits", GPU)
    if limit == UNKNOWN:
        return
    if number(limit) is None:
        yield f"{display(view)}: GPU NodePool has no spec.limits[{GPU!r}]; Karpenter could buy GPUs without bound"


# ------------------------------------------------------------------ traffic weights


def traffic_weights(view: ResourceView, _: Context) -> Iterator[str]:
    """The versions of a split sum to 100 (every backendRef counts: Gateway API reads a missing weight as 1)."""
    for index, rule in enumerate(as_list(get(view.props, "spec", "rules"))):
        backends = as_list(get(rule, "backendRefs"))
        if len(backends) < 2:
            continue
        weights = [get(b, "weight", default=1) for b in backends]
        if UNKNOWN in weights:
            continue
        total = sum(number(w) or 0 for w in weights)
        if total != 100:
            split = " + ".join(f"{get(b, 'name')}={w}" for b, w in zip(backends, weights, strict=True))
            yield f"{display(view)}: rule {index} splits traffic {split} = {total:g}, not 100"


# ------------------------------------------------------------------ experiment verdicts

EXPERIMENTS_ANNOTATION = "llmplane.dev/experiments"
"""What a model's HTTPRoute records of its experiments (components/serving/model_rollout.py)."""


def experiment_verdict(view: ResourceView, _: Context) -> Iterator[str]:
    """No treatment takes more traffic than its experiment's recorded verdict allows: a promote verdict for that
    step, or the first step before any verdict; a rollback allows none."""
    record = get(view.props, "metadata", "annotations", EXPERIMENTS_ANNOTATION)
    if record in (None, UNKNOWN):
        return
    for experiment in json.loads(record):
        for version, weight in sorted(experiment["treatments"].items()):
            if weight > experiment["allowed"]:
                verdict = experiment["verdict"]
                why = (f"its recorded verdict ({verdict}, report sha256 {str(experiment['report'])[:12]}) allows "
                       f"{experiment['allowed']} %" if verdict else
                       f"no verdict is recorded, which allows the first step, {experiment['allowed']} %")
                yield (f"{display(view)}: version {version} takes {weight} % in experiment {experiment['name']}, "
                       f"but {why}")


# ------------------------------------------------------------------ on-demand baseline


def _karpenter_on_demand(view: ResourceView) -> bool:
    """Whether a Karpenter NodePool is on-demand capacity: it may not launch spot.

    A NodePool that allows both is spot-first (Karpenter takes spot whenever it is offered), so it is no
    baseline; an unconstrained capacity type means on-demand (Karpenter's default).
    """
    if number(get(view.props, "spec", "limits", GPU)) == 0:
        return False
    for requirement in as_list(get(_karpenter_template(view), "spec", "requirements")):
        if get(requirement, "key") != "karpenter.sh/capacity-type":
            continue
        values = as_list(get(requirement, "values"))
        operator = get(requirement, "operator")
        if UNKNOWN in values:
            return True
        if operator == "In":
            return "on-demand" in values and "spot" not in values
        if operator == "NotIn":
            return "spot" in values and "on-demand" not in values
    return True


def _gke_on_demand(view: ResourceView) -> bool:
    config = as_dict(view.props.get("nodeConfig"))
    if is_true(config.get("spot")) or is_true(config.get("preemptible")):
        return False
    bound = _gke_max(view)
    return bound is None or bound > 0


def not_spot_only(resources: Sequence[ResourceView], context: Context) -> Iterator[Finding]:
    if not context.is_prod:
        return
    pools: dict[tuple[str, ...], list[tuple[ResourceView, bool]]] = {}
    for r in resources:
        if r.type == GKE_NODE_POOL:
            pool = get(r.props, "nodeConfig", "labels", POOL_LABEL)
            if pool and _gke_accelerators(r):
                key = (str(r.scope), str(r.props.get("cluster")), str(pool))
                pools.setdefault(key, []).append((r, _gke_on_demand(r)))
        elif k8s_kind(r.type) == "NodePool" and r.type.startswith("kubernetes:karpenter.sh/"):
            pool = get(_karpenter_template(r), "metadata", "labels", POOL_LABEL)
            if pool:
                pools.setdefault((str(r.scope), "", str(pool)), []).append((r, _karpenter_on_demand(r)))
    for (_scope, _cluster, pool), members in sorted(pools.items(), key=lambda item: item[0]):
        if not any(on_demand for _view, on_demand in members):
            first = members[0][0]
            yield Finding(first.urn, f"GPU pool '{pool}' ({', '.join(m.name for m, _ in members)}) is spot-only in "
                                     f"{context.environment or 'prod'}: a spot reclaim can take all of its "
                                     "capacity at once")


# ------------------------------------------------------------------ secrets

SECRET_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIALS?)$", re.IGNORECASE)
"""Environment variable names that carry a secret (VLLM_API_KEY, HF_TOKEN, DB_PASSWORD, CLIENT_SECRET)."""


def no_plaintext_secrets(view: ResourceView, context: Context) -> Iterator[str]:
    if k8s_kind(view.type) == "Secret":
        if not context.secrets_marked:
            return  # CrossGuard hands secrets over unwrapped: only the offline plan can tell
        for field in ("data", "stringData"):
            values = view.props.get(field)
            if values in (None, SECRET, UNKNOWN):
                continue
            plain = [k for k, v in as_dict(values).items() if v not in (SECRET, UNKNOWN)]
            if plain:
                yield (f"{display(view)}: {field} {', '.join(sorted(plain))} is plain text in the program and "
                       "state; pass it as a Pulumi secret")
        return
    spec, _labels = pod_template(view)
    for container in containers(spec):
        for item in as_list(container.get("env")):
            name = get(item, "name")
            if isinstance(name, str) and SECRET_NAME.search(name) and get(item, "value") not in (None, ""):
                yield (f"{display(view)}: container '{container.get('name', '?')}' sets {name} as a literal "
                       "value; use valueFrom.secretKeyRef")


RULES = [
    Rule(
        name="platform-service-monitor",
        description="Every served model version (vLLM workload) is scraped by a ServiceMonitor, and its cluster "
        "has a PrometheusRule alerting on vLLM metrics.",
        remediation="Keep `observability.enabled: true` so each VllmService gets its ServiceMonitor and each "
        "cluster the PrometheusRule from monitoring/alerts.yaml; with a hand-written workload add a Service and a "
        "ServiceMonitor selecting it.",
        resource_types=None,
        check=served_and_monitored,
    ),
    Rule(
        name="platform-multi-region",
        description="Prod serves from at least two cloud regions.",
        remediation="Add a second cluster in another region (clusters[] in environments/Pulumi.prod.yaml) and "
        "list it in routing.failoverOrder.",
        resource_types=None,
        check=multi_region,
        uses_environment=True,
    ),
    Rule(
        name="platform-gpu-pool-max",
        description="Every GPU pool has a maximum: Karpenter NodePools limit nvidia.com/gpu, GKE GPU node pools "
        "set an autoscaling maximum.",
        remediation="Set spec.limits['nvidia.com/gpu'] on the Karpenter NodePool, or autoscaling."
        "totalMaxNodeCount on the GKE node pool (spec: pools[].nodes.max).",
        resource_types=(KARPENTER_NODE_POOL, GKE_NODE_POOL),
        check=gpu_pool_max,
    ),
    Rule(
        name="platform-traffic-weights",
        description="An HTTPRoute rule that splits traffic over several backends has weights summing to 100.",
        remediation="Make the versions' weights add up to 100 (spec: models.<name>.versions[].weight).",
        resource_types=(HTTP_ROUTE,),
        check=traffic_weights,
    ),
    Rule(
        name="platform-experiment-verdict",
        description="A treatment of an experiment takes no more traffic than the experiment's recorded verdict "
        "allows (a promote verdict for that weight; before any verdict, the first step).",
        remediation="Run `llmplane experiment report <env> <model>` and record its promote verdict in the "
        "experiment's `verdict` (the scheduled workflow's pull request does both), or lower the weight.",
        resource_types=(HTTP_ROUTE,),
        check=experiment_verdict,
    ),
    Rule(
        name="platform-not-spot-only",
        description="In prod every GPU pool keeps on-demand capacity under its spot capacity: an on-demand-only "
        "Karpenter NodePool or a non-spot GKE node pool with the pool's llmplane.dev/pool label.",
        remediation="Give spot pools an on-demand base (pools[].onDemandBase > 0, which adds `<pool>-base`) or "
        "use capacityType: on-demand.",
        resource_types=None,
        check=not_spot_only,
        uses_environment=True,
    ),
    Rule(
        name="platform-no-plaintext-secrets",
        description="No secret in plain text: secret-looking environment variables come from Secrets, and "
        "Secret data is a Pulumi secret.",
        remediation="Use env[].valueFrom.secretKeyRef for keys, tokens and passwords; build Secret data from "
        "pulumi.Output.secret(...) or config set with --secret.",
        resource_types=(*WORKLOAD_TYPES, "kubernetes:core/v1:Secret"),
        check=no_plaintext_secrets,
    ),
]
