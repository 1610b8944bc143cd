"""ImagePrepull: the serving image is on every GPU node of a pool before a replica needs it.

Per cloud, one mechanism takes the image pull off a replica's critical path:
- EKS and on premises: this DaemonSet. Its init containers run the serving image (pulling it) and exit; a pause
  container keeps the pod, so the kubelet counts the image as in use and its image garbage collection keeps it
  (kubelet `image_gc_manager.go` detectImages lists every container of every pod, exited ones included, with
  `GetPods(ctx, true)`).
  A new node pulls while it joins, before the scheduler's first replica lands. (An EKS alternative, not built
  here: a Bottlerocket data-volume EBS snapshot with the image pre-pulled, given to the Karpenter EC2NodeClass as
  the `/dev/xvdb` block device mapping's `snapshotID`; it needs a pipeline that boots a node, pulls the image and
  snapshots the volume for every image digest, and the snapshot ID in the spec.)
- GKE: image streaming (`gcfs_config.enabled`, images in Artifact Registry, which the GKE cluster has): the
  container starts while its layers stream, so the pull leaves the critical path without a DaemonSet; or a
  secondary boot disk with the image cached (`gke_node_config`). The DaemonSet still helps there: it warms the
  node's local copy before the first replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of
from llmplane.facts.kubernetes import GPU_TAINT_KEY, POOL_LABEL

PAUSE_IMAGE = (
    "registry.k8s.io/pause:3.10@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a"
)
"""The Kubernetes pause image 3.10, pinned by its multi-arch index digest (registry.k8s.io, as pinned in public
manifests, e.g. Cilium's images/runtime Dockerfile)."""
"""Node label every GPU pool sets: its pool name."""
GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
"""The GPU taint every GPU pool carries, tolerated."""
_PAUSE_UID = 65535
"""The pause image's own user."""


def pause_container(image: str = PAUSE_IMAGE) -> dict:
    """A container that holds a pod and does nothing: no privileges, a few MiB."""
    resources = {"cpu": "10m", "memory": "16Mi"}
    return {
        "name": "pause",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": resources, "limits": resources},
        "securityContext": {"runAsUser": _PAUSE_UID, "runAsGroup": _PAUSE_UID, "runAsNonRoot": True,
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "privileged": False, "capabilities": {"drop": ["ALL"]}},
    }


@dataclass(frozen=True)
class ImagePrepullArgs:
    """The pool and the images its replicas run."""

    pool: str
    """Pool name: the `llmplane.dev/pool` node label the DaemonSet selects."""
    images: Sequence[pulumi.Input[str]]
    """Images to keep on the pool's nodes (the serving image of this region), each by digest."""
    namespace: pulumi.Input[str]
    """Namespace of the DaemonSet (restricted Pod Security suffices)."""
    pause_image: str = PAUSE_IMAGE
    """The container left running, by digest."""
    image_pull_secrets: Sequence[str] = field(default_factory=tuple)
    """Pull secrets the images need (none with ECR/Artifact Registry node credentials)."""


class ImagePrepull(pulumi.ComponentResource):
    """A DaemonSet on a pool's GPU nodes whose init containers pull the serving images; no GPU requested."""

    daemonset_name: pulumi.Output[str]
    """Name of the DaemonSet."""

    def __init__(self, name: str, args: ImagePrepullArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:ImagePrepull", name, None, opts)
        child = children_of(self, opts)
        if not args.images:
            raise ValueError(f"image pre-pull of pool {args.pool}: no image given; pass the serving image")
        for image in (*args.images, args.pause_image):
            # An image pushed by this program (VllmImage.ref) is an output that always carries its digest.
            if isinstance(image, str) and "@sha256:" not in image:
                raise ValueError(f"image pre-pull of pool {args.pool}: image {image!r} is not pinned by digest; "
                                 "reference it as <repository>@sha256:<digest>")
        kname = f"image-prepull-{args.pool}"[:63].rstrip("-")
        labels = k8s_labels(name="llmplane-image-prepull", instance=kname, component="image-prepull")
        pulls = [{
            **pause_container(image),
            "name": f"pull-{index}",
            # Any command the image has: running it is what makes the kubelet pull it.
            "command": ["python3", "-c", "pass"],
            "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True,
                                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "privileged": False, "capabilities": {"drop": ["ALL"]}},
        } for index, image in enumerate(args.images)]
        daemonset = k8s.apps.v1.DaemonSet(
            f"{name}-daemonset",
            metadata={"name": kname, "namespace": args.namespace, "labels": labels},
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/instance": kname}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": {POOL_LABEL: args.pool},
                        "tolerations": [GPU_TOLERATION],
                        "automountServiceAccountToken": False,
                        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                        "initContainers": pulls,
                        "containers": [pause_container(args.pause_image)],
                        **({"imagePullSecrets": [{"name": s} for s in args.image_pull_secrets]}
                           if args.image_pull_secrets else {}),
                    },
                },
            },
            opts=child,
        )
        self.daemonset_name = daemonset.metadata.name
        self.register_outputs({"daemonset_name": self.daemonset_name})


@dataclass(frozen=True)
class GkeImagePreload:
    """GKE node pool settings that take the image pull off the critical path (for GpuCluster's GKE node pools)."""

    image_streaming: bool = True
    """Image streaming (GKE `gcfs_config`): containers start while their layers stream from Artifact Registry."""
    secondary_boot_disk_image: str | None = None
    """`projects/<p>/global/images/<name>`: a disk image with the serving image pre-cached (built with GKE's
    gke-disk-image-builder per image digest), mounted as a secondary boot disk; None: none."""

    def node_config(self) -> dict:
        """The `node_config` entries of a `gcp.container.NodePool` (pulumi-gcp: `gcfs_config`,
        `secondary_boot_disks` with `mode: CONTAINER_IMAGE_CACHE`)."""
        config: dict = {"gcfs_config": {"enabled": self.image_streaming}}
        if self.secondary_boot_disk_image is not None:
            if not self.secondary_boot_disk_image.startswith("projects/"):
                raise ValueError(f"secondary boot disk image {self.secondary_boot_disk_image!r} must be a disk "
                                 "image path: projects/<project>/global/images/<name>")
            config["secondary_boot_disks"] = [{"disk_image": self.secondary_boot_disk_image,
                                               "mode": "CONTAINER_IMAGE_CACHE"}]
        return config
