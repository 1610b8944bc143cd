"""Warm headroom: spare GPU slots kept warm by low-priority placeholder pods that real replicas preempt.

Per cluster, `ServingPriorities` creates two PriorityClasses: `llmplane-serving` for the vLLM pods and
`llmplane-headroom`, below it (and below the default 0), for placeholders, which never preempt anything
themselves. Per pool, `WarmHeadroom` runs a placeholder Deployment whose pods request exactly one replica's GPU
shape on the pool's nodes; the cluster autoscaler (Karpenter, GKE) keeps nodes for them, and when a replica needs
the GPUs the scheduler evicts a placeholder at once, so the replica skips the node join.

Scheduled headroom: a KEDA ScaledObject on the placeholder Deployment with one `cron` trigger per window raises
the slots during known peaks. KEDA is on every cluster and its cron scaler is declarative (no CronJob, no
service account that may patch Deployments, no missed-run catch-up to reason about); KEDA's cron scaler is active
from `start` until `end` (two cron expressions in a time zone), and the highest active trigger wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of

from .image_prepull import GPU_TOLERATION, PAUSE_IMAGE, POOL_LABEL, pause_container
from .vllm_service import GPU_RESOURCE

SERVING_PRIORITY_CLASS = "llmplane-serving"
"""PriorityClass of the vLLM pods."""
HEADROOM_PRIORITY_CLASS = "llmplane-headroom"
"""PriorityClass of the placeholders: below the vLLM pods and below pods without a class (0)."""
SERVING_PRIORITY = 100_000
"""vLLM pods' priority: above ordinary workloads, far below the system classes (2,000,000,000 and up)."""
HEADROOM_PRIORITY = -1
"""Placeholders' priority: anything, even a pod without a class (0), preempts them, and they are not expendable to
the Cluster Autoscaler, so it keeps nodes for them (it ignores pods below `--expendable-pods-priority-cutoff`,
default -10, strict `<`: kubernetes/autoscaler cluster-autoscaler/core/utils/expendable.go, FAQ "How does
Cluster Autoscaler work with Pod Priority"). -1 keeps clear of that boundary, where a cluster that raised the
cutoff would silently lose its warm nodes. Karpenter has no such cutoff: it provisions for every pending pod not
nominated by preemption (kubernetes-sigs/karpenter pkg/utils/pod/scheduling.go `IsProvisionable`)."""
CLUSTER_AUTOSCALER_EXPENDABLE_CUTOFF = -10
"""The Cluster Autoscaler's default `--expendable-pods-priority-cutoff` (cluster-autoscaler/config/flags/flags.go)."""


@dataclass(frozen=True)
class HeadroomWindow:
    """Extra warm slots during a known daily peak."""

    cron: str
    """Start of the window: a 5-field cron expression with a fixed minute and hour, e.g. `0 8 * * 1-5`."""
    duration_minutes: int
    """Length of the window, 1..1440 minutes."""
    slots: int
    """Warm slots during the window (the highest active window wins; never fewer than the base slots)."""


class ServingPriorities(pulumi.ComponentResource):
    """The two cluster-wide PriorityClasses: vLLM pods, and placeholders below them."""

    serving_class: pulumi.Output[str]
    """Name of the vLLM pods' PriorityClass."""
    headroom_class: pulumi.Output[str]
    """Name of the placeholders' PriorityClass."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:ServingPriorities", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="llmplane", instance=name, component="scheduling")
        serving = k8s.scheduling.v1.PriorityClass(
            f"{name}-serving", metadata={"name": SERVING_PRIORITY_CLASS, "labels": labels},
            value=SERVING_PRIORITY, global_default=False, preemption_policy="PreemptLowerPriority",
            description="vLLM model servers: preempt warm-headroom placeholders to take their GPUs.", opts=child)
        headroom = k8s.scheduling.v1.PriorityClass(
            f"{name}-headroom", metadata={"name": HEADROOM_PRIORITY_CLASS, "labels": labels},
            value=HEADROOM_PRIORITY, global_default=False, preemption_policy="Never",
            description="Warm-headroom placeholders: hold GPU slots until a real replica needs them.", opts=child)
        self.serving_class = serving.metadata.name
        self.headroom_class = headroom.metadata.name
        self.register_outputs({"serving_class": self.serving_class, "headroom_class": self.headroom_class})


@dataclass(frozen=True)
class WarmHeadroomArgs:
    """The pool, the shape of one replica, and how many slots to keep warm when."""

    pool: str
    """Pool name: the `llmplane.dev/pool` node label the placeholders select."""
    namespace: pulumi.Input[str]
    """Namespace of the placeholders."""
    gpus: int
    """GPUs of one replica (the model's tensor-parallel size)."""
    cpu: str
    """CPU request of one replica, e.g. `4`."""
    memory: str
    """Memory request of one replica, e.g. `24Gi`."""
    slots: int
    """Warm slots outside the windows."""
    windows: Sequence[HeadroomWindow] = field(default_factory=tuple)
    """Scheduled extra slots."""
    time_zone: str = "Etc/UTC"
    """IANA time zone of the windows' cron expressions."""
    priority_class: pulumi.Input[str] = HEADROOM_PRIORITY_CLASS
    """The placeholders' PriorityClass (ServingPriorities.headroom_class)."""
    pause_image: str = PAUSE_IMAGE
    """The placeholder container, by digest."""


def _field_values(text: str, low: int, high: int, what: str, cron: str) -> set[int] | None:
    """The values of one cron field (None for `*`), refusing what a window cannot shift."""
    if text == "*":
        return None
    values: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"headroom window cron {cron!r}: {what} field {text!r} must be numbers, ranges or '*' "
                             "(no steps or names), e.g. 1-5")
        start, end = int(first), int(last or first)
        if not low <= start <= end <= high:
            raise ValueError(f"headroom window cron {cron!r}: {what} {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1))
    return values


def window_end(cron: str, duration_minutes: int) -> str:
    """The cron expression of a window's end: its start shifted by the duration (the next day's weekdays when
    it crosses midnight)."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"headroom window cron {cron!r} has {len(fields)} fields; give 5: minute hour "
                         "day-of-month month day-of-week")
    if not 1 <= duration_minutes <= 1440:
        raise ValueError(f"headroom window of {cron!r}: durationMinutes {duration_minutes} is outside 1..1440")
    minute, hour, day, month, weekday = fields
    if not (minute.isdigit() and hour.isdigit()):
        raise ValueError(f"headroom window cron {cron!r}: a window starts at a fixed minute and hour; write e.g. "
                         "'0 8 * * 1-5' (several start times are several windows)")
    if int(minute) > 59 or int(hour) > 23:
        raise ValueError(f"headroom window cron {cron!r}: minute must be 0-59 and hour 0-23")
    total = int(hour) * 60 + int(minute) + duration_minutes
    days, end = divmod(total, 1440)
    weekdays = _field_values(weekday, 0, 7, "day-of-week", cron)
    _field_values(day, 1, 31, "day-of-month", cron)
    _field_values(month, 1, 12, "month", cron)
    if days and (day != "*" or month != "*"):
        raise ValueError(f"headroom window cron {cron!r} with {duration_minutes} minutes crosses midnight, which a "
                         "day-of-month or month cannot follow; end it by midnight or use day-of-week instead")
    if days and weekdays is not None:
        weekday = ",".join(str(d) for d in sorted({(d % 7 + days) % 7 for d in weekdays}))
    return f"{end % 60} {end // 60} {day} {month} {weekday}"


def scaled_object_spec(deployment: pulumi.Input[str], slots: int, windows: Sequence[HeadroomWindow],
                       time_zone: str) -> dict:
    """KEDA ScaledObject of the placeholders: `slots` always, each window's slots while it is open."""
    return {
        "scaleTargetRef": {"name": deployment},
        "minReplicaCount": slots,
        "maxReplicaCount": max(slots, *(w.slots for w in windows)),
        "triggers": [{"type": "cron", "name": f"window-{index}", "metadata": {
            "timezone": time_zone, "start": w.cron, "end": window_end(w.cron, w.duration_minutes),
            "desiredReplicas": str(w.slots)}} for index, w in enumerate(windows)],
    }


class WarmHeadroom(pulumi.ComponentResource):
    """A pool's placeholder Deployment (one replica's GPU shape per pod) and its scheduled windows."""

    deployment_name: pulumi.Output[str]
    """Name of the placeholder Deployment."""

    def __init__(self, name: str, args: WarmHeadroomArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:WarmHeadroom", name, None, opts)
        child = children_of(self, opts)
        if args.slots < 0:
            raise ValueError(f"warm headroom of pool {args.pool}: slots {args.slots} is negative; give 0 or more")
        if args.gpus < 1:
            raise ValueError(f"warm headroom of pool {args.pool}: gpus {args.gpus} is below 1; give the model's "
                             "tensor-parallel size")
        for window in args.windows:
            if window.slots < args.slots:
                raise ValueError(f"warm headroom of pool {args.pool}: window {window.cron!r} has {window.slots} "
                                 f"slots, fewer than the {args.slots} kept outside windows; raise it to at least "
                                 f"{args.slots}")
            window_end(window.cron, window.duration_minutes)
        kname = f"warm-headroom-{args.pool}"[:63].rstrip("-")
        labels = k8s_labels(name="llmplane-warm-headroom", instance=kname, component="warm-headroom")
        resources = {"cpu": args.cpu, "memory": args.memory, GPU_RESOURCE: str(args.gpus)}
        placeholder = {**pause_container(args.pause_image), "name": "placeholder",
                       "resources": {"requests": resources, "limits": resources}}
        scheduled = bool(args.windows)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": kname, "namespace": args.namespace, "labels": labels},
            spec={
                # With windows, KEDA owns the replica count: leave it out so `pulumi up` never fights it.
                **({} if scheduled else {"replicas": args.slots}),
                "selector": {"matchLabels": {"app.kubernetes.io/instance": kname}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priorityClassName": args.priority_class,
                        "terminationGracePeriodSeconds": 0,
                        "automountServiceAccountToken": False,
                        "nodeSelector": {POOL_LABEL: args.pool},
                        "tolerations": [GPU_TOLERATION],
                        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [placeholder],
                    },
                },
            },
            opts=child,
        )
        if scheduled:
            k8s.apiextensions.CustomResource(
                f"{name}-windows", api_version="keda.sh/v1alpha1", kind="ScaledObject",
                metadata={"name": kname, "namespace": args.namespace, "labels": labels},
                spec=scaled_object_spec(deployment.metadata.name, args.slots, args.windows, args.time_zone),
                opts=child)
        self.deployment_name = deployment.metadata.name
        self.register_outputs({"deployment_name": self.deployment_name})
