"""What every policy is made of: a `Rule`, the view of a resource it judges, and the context it judges in.

A rule is plain Python: the CrossGuard pack (`policies/pack.py`) and the offline evaluator
(`stacks/plan_policies.py`) both turn what they see into `ResourceView`s and call the same `check`.
Props are the wire form of a resource's inputs: camelCase keys, as CrossGuard's `args.props` and the
offline plan's `inputs` both give them. A value nobody can know before the cloud creates something
reads `"[unknown]"`; in the offline plan a Pulumi secret reads `"[secret]"`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

UNKNOWN = "[unknown]"
"""A value only known after the cloud creates something; rules never fail on it."""
SECRET = "[secret]"
"""A Pulumi secret, as the offline plan shows it."""


@dataclass(frozen=True)
class Context:
    """Where a rule judges: the environment, and what the view can tell about secrets."""

    environment: str | None = None
    """Stack name: local, dev, staging or prod; None when nobody said (judged as strictly as prod)."""
    secrets_marked: bool = True
    """Whether a Pulumi secret is recognisable in props (the offline plan: yes; CrossGuard unwraps them: no)."""

    @property
    def is_prod(self) -> bool:
        """Prod, or an environment nobody named: the strict reading."""
        return self.environment in (None, "prod")


@dataclass(frozen=True)
class ResourceView:
    """One resource as a rule sees it."""

    type: str
    """Type token, e.g. `kubernetes:apps/v1:Deployment`."""
    urn: str
    """The resource's URN."""
    props: Mapping[str, Any]
    """Inputs in wire form (camelCase), plain dicts and lists."""
    name: str = ""
    """Logical (Pulumi) name."""
    scope: str | None = None
    """What the resource lands in (a cluster, or the provider that reaches it); None: unknown, matches any."""
    ids: tuple[str, ...] = ()
    """Values other resources' inputs carry to refer to this one (its id), where known before creation."""
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Input name -> URNs of the resources that input's value comes from (CrossGuard knows them)."""


@dataclass(frozen=True)
class Finding:
    """One violation: which resource (or the stack, urn "") and what is wrong."""

    urn: str
    message: str


ResourceCheck = Callable[[ResourceView, Context], Iterable[str]]
"""Judges one resource: yields one message per problem."""
StackCheck = Callable[[Sequence[ResourceView], Context], Iterable[Finding]]
"""Judges the whole stack: yields findings that name the resource at fault."""


@dataclass(frozen=True)
class Rule:
    """A policy, independent of who runs it."""

    name: str
    """Kebab-case id, e.g. `k8s-image-digest`; the CrossGuard policy name and the config key."""
    description: str
    """What the policy demands, one sentence."""
    remediation: str
    """What to change when it is violated."""
    resource_types: tuple[str, ...] | None
    """Type-token patterns (fnmatch) a resource rule applies to; None for a stack rule."""
    check: Callable[..., Iterable[Any]]
    """`ResourceCheck` for a resource rule, `StackCheck` for a stack rule."""
    uses_environment: bool = False
    """Whether the verdict depends on the environment (its config schema then carries `environment`)."""

    @property
    def is_stack_rule(self) -> bool:
        return self.resource_types is None

    def applies_to(self, type_: str) -> bool:
        """Whether a resource rule judges resources of this type."""
        return self.resource_types is not None and any(fnmatch.fnmatchcase(type_, p) for p in self.resource_types)

    def run(self, resources: Sequence[ResourceView], context: Context) -> list[Finding]:
        """Every violation in a set of resources, whichever kind of rule this is."""
        if self.is_stack_rule:
            return list(self.check(resources, context))
        return [
            Finding(resource.urn, message)
            for resource in resources
            if self.applies_to(resource.type)
            for message in self.check(resource, context)
        ]


# ---------------------------------------------------------------- helpers for reading wire props


def get(value: Any, *path: str | int, default: Any = None) -> Any:
    """`value[path[0]][path[1]]...`, or `default` where a step is missing or not a container."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return default
        elif not isinstance(value, Mapping) or step not in value:
            return default
        value = value[step]
    return value


def known(value: Any) -> bool:
    """False for a value that cannot be judged yet."""
    return value != UNKNOWN


def as_dict(value: Any) -> Mapping[str, Any]:
    """A mapping, or an empty one (for a missing, unknown or ill-typed value)."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """A list, or an empty one."""
    return list(value) if isinstance(value, list) else []


def is_true(value: Any) -> bool:
    """True for a real true, also as the wire's string form."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def is_false(value: Any) -> bool:
    """True for an explicit false (missing is not false)."""
    return value is False or (isinstance(value, str) and value.lower() == "false")


def number(value: Any) -> float | None:
    """A number from an int, float or numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def k8s_kind(type_: str) -> str:
    """`Deployment` for `kubernetes:apps/v1:Deployment`; '' for anything not Kubernetes."""
    parts = type_.split(":")
    return parts[2] if len(parts) == 3 and parts[0] == "kubernetes" else ""


def metadata(view: ResourceView) -> Mapping[str, Any]:
    return as_dict(view.props.get("metadata"))


def labels_of(view: ResourceView) -> Mapping[str, Any]:
    return as_dict(metadata(view).get("labels"))


def namespace_of(view: ResourceView) -> str:
    """A namespaced object's namespace ('default' when not given)."""
    value = metadata(view).get("namespace")
    return value if isinstance(value, str) and value else "default"


def display(view: ResourceView) -> str:
    """`Kind namespace/name` for Kubernetes objects, else the logical name."""
    kind = k8s_kind(view.type)
    if kind:
        name = metadata(view).get("name") or view.name
        ns = metadata(view).get("namespace")
        return f"{kind} {ns}/{name}" if isinstance(ns, str) and ns else f"{kind} {name}"
    return view.name or view.urn


def same_scope(a: ResourceView, b: ResourceView) -> bool:
    """Whether two resources may land in the same place (unknown scopes match anything)."""
    return a.scope is None or b.scope is None or a.scope == b.scope


def same_namespace(a: ResourceView, b: ResourceView) -> bool:
    na, nb = namespace_of(a), namespace_of(b)
    return same_scope(a, b) and (na == nb or UNKNOWN in (na, nb))


def selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Kubernetes LabelSelector semantics: `{}` selects everything, matchLabels and matchExpressions all hold."""
    if not isinstance(selector, Mapping):
        return False
    for key, value in as_dict(selector.get("matchLabels")).items():
        if labels.get(key) != value and UNKNOWN not in (value, labels.get(key)):
            return False
    for expression in as_list(selector.get("matchExpressions")):
        key = get(expression, "key")
        operator = get(expression, "operator")
        values = as_list(get(expression, "values"))
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def map_selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    """A plain label map (Service.spec.selector) selects labels that contain all of it; empty selects nothing."""
    selector = as_dict(selector)
    return bool(selector) and all(labels.get(k) == v or v == UNKNOWN for k, v in selector.items())


WORKLOAD_TYPES = (
    "kubernetes:apps/*:Deployment",
    "kubernetes:apps/*:StatefulSet",
    "kubernetes:apps/*:DaemonSet",
    "kubernetes:apps/*:ReplicaSet",
    "kubernetes:batch/*:Job",
    "kubernetes:batch/*:CronJob",
    "kubernetes:core/v1:Pod",
)
"""Kubernetes objects that run containers."""


def is_workload(view: ResourceView) -> bool:
    return any(fnmatch.fnmatchcase(view.type, p) for p in WORKLOAD_TYPES)


def pod_template(view: ResourceView) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(pod spec, pod labels) of a workload; empty mappings for anything else."""
    kind, spec = k8s_kind(view.type), as_dict(view.props.get("spec"))
    if kind == "Pod":
        return spec, labels_of(view)
    if kind == "CronJob":
        template = as_dict(get(spec, "jobTemplate", "spec", "template"))
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        template = as_dict(spec.get("template"))
    else:
        return {}, {}
    return as_dict(template.get("spec")), as_dict(get(template, "metadata", "labels"))


def containers(pod_spec: Mapping[str, Any], init: bool = True) -> Iterator[Mapping[str, Any]]:
    """The pod's containers, then (if asked) its init containers."""
    keys = ("containers", "initContainers") if init else ("containers",)
    for key in keys:
        for container in as_list(pod_spec.get(key)):
            if isinstance(container, Mapping):
                yield container


def is_gpu_resource(name: str) -> bool:
    """Extended resources that are accelerators: nvidia.com/gpu (and MIG slices), amd.com/gpu, Intel GPUs."""
    return name.startswith(("nvidia.com/", "amd.com/gpu", "gpu.intel.com/"))


def gpu_container(container: Mapping[str, Any]) -> bool:
    resources = as_dict(container.get("resources"))
    return any(is_gpu_resource(k) for part in ("requests", "limits") for k in as_dict(resources.get(part)))


def is_vllm(view: ResourceView) -> bool:
    """A workload that serves a model with vLLM: a container named vllm or running a vLLM image."""
    spec, _ = pod_template(view)
    for container in containers(spec, init=False):
        image = container.get("image")
        if container.get("name") == "vllm" or (isinstance(image, str) and "vllm" in image.split("@")[0]):
            return True
    return False
