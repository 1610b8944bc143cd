"""NodeModelCache: a pool's GPU nodes keep the weights of the versions deployed on it on local disk, verified.

A prefetch DaemonSet on the pool's nodes (the GPU taint tolerated, no GPU requested) fills
`<cache path>/weights/<model>/<version>/` from object storage, checking every file's sha256 against the catalog
and writing a marker last (`scripts/weights_cache.py prefetch`); it drops versions no longer deployed there. The
prefetch hashes the very bytes it writes, so each object is read from object storage once per node. vLLM pods
mount their version's folder read-only (`vllm_volumes`), wait until the marker vouches for the digests they
expect, and load from it: a replica reads no object storage. `<cache path>/compile/<model>/<version>/` keeps
the torch.compile cache a replica publishes once it is ready, so the next start on that node does not compile
again.

hostPath volumes are refused by the `restricted` and `baseline` Pod Security levels: the cache's namespace, and
the serving namespace when its pods mount the cache, must admit them (`HOST_PATH_NAMESPACE_LABELS`).
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import cidr, credentials, policy, rule
from llmplane.components.options import children_of

from .image_prepull import GPU_TOLERATION, PAUSE_IMAGE, POOL_LABEL, pause_container
from .streaming import SCRIPT_NAME, SCRIPT_SOURCE, stream_source

SERVING_UID = 10001
"""The serving image's user (non-root, above the host's usual UID range), which must own the compile cache
folders it writes."""
SCRIPT_DIR = "/opt/llmplane-cache"
"""Where the DaemonSet mounts the tool and its manifest."""
MOUNT_WEIGHTS = "/node-cache/weights"
"""Where a vLLM pod sees its version's verified weights (read-only)."""
MOUNT_COMPILE = "/node-cache/compile"
"""Where a vLLM pod sees its version's published compile cache on the node."""
HOST_PATH_NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "privileged",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}
"""Pod Security labels of a namespace whose pods mount the node cache: hostPath needs `privileged` enforcement
(Kubernetes "Pod Security Standards": baseline forbids hostPath volumes); warn and audit keep reporting anything
else the restricted level would refuse."""


@dataclass(frozen=True)
class CachedVersion:
    """One catalog version the pool serves, as the prefetch reads it."""

    model: str
    """Model name."""
    version: str
    """Catalog version."""
    uri: str
    """Catalog URI for this cloud: the prefix of the files (with `files`) or the archive (without)."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Per-file sha256 (relative name to hex digest); empty: the archive path, verified by `archive_sha256`."""
    archive_sha256: str | None = None
    """The archive's sha256, when `files` is empty."""

    def manifest_entry(self) -> dict:
        """The prefetch manifest's entry: an https mirror is read as S3-compatible storage (path-style, at its
        endpoint)."""
        if self.files:
            source = stream_source(self.uri)
            return {"model": self.model, "version": self.version, "uri": source.uri, "endpoint": source.endpoint,
                    "files": dict(sorted(self.files.items()))}
        if not self.archive_sha256:
            raise ValueError(f"node cache: {self.model} {self.version} has neither per-file digests nor an archive "
                             "sha256; set models.<m>.catalog.<version>.files or its sha256")
        return {"model": self.model, "version": self.version, "uri": self.uri, "archive_sha256": self.archive_sha256}


@dataclass(frozen=True)
class NodeModelCacheArgs:
    """A pool, its cache folder and the versions to keep there."""

    pool: str
    """Pool name: the `llmplane.dev/pool` node label the DaemonSet selects."""
    cache_path: str
    """Host folder of the cache on the node's local disk (instance-store RAID0, local SSD or a host path)."""
    versions: Sequence[CachedVersion]
    """Catalog versions deployed on the pool."""
    image: pulumi.Input[str]
    """Image the prefetch runs in (the serving image: python3, boto3, google-cloud-storage), by digest."""
    namespace: pulumi.Input[str]
    """Namespace of the DaemonSet; it must admit hostPath (HOST_PATH_NAMESPACE_LABELS)."""
    service_account: str
    """Service account the prefetch reads object storage as (bind it to the weights reader identity)."""
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Its annotations (GKE Workload Identity: `iam.gke.io/gcp-service-account`)."""
    compile_cache: bool = True
    """Keep a per-version compile cache folder, owned by the serving user, beside the weights."""
    credentials_secret: pulumi.Input[str] | None = None
    """Secret with object-storage credential files (on premises); None: workload identity."""
    credential_env: Mapping[str, str] = field(default_factory=dict)
    """File name in that Secret to the variable naming its path, e.g. `aws-credentials`: AWS_SHARED_CREDENTIALS_FILE."""
    pause_image: str = PAUSE_IMAGE
    """The container left running once the cache is filled, by digest."""


def _ownership(image: pulumi.Input[str]) -> dict:
    """The one step that runs as root: the kubelet creates the host folder root-owned, so this container (no
    network use, every capability dropped but CHOWN) hands its top folders to the serving user, and the
    prefetch then downloads without root."""
    folders = ("/cache", "/cache/weights", "/cache/compile")
    return {
        "name": "own",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", "import os\n"
                    f"for folder in {folders!r}:\n"
                    "    os.makedirs(folder, exist_ok=True)\n"
                    f"    os.chown(folder, {SERVING_UID}, {SERVING_UID})\n"],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "privileged": False,
                            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}},
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
    }


def host_weights_dir(cache_path: str, model: str, version: str) -> str:
    """Host folder of one version's verified weights."""
    return f"{cache_path.rstrip('/')}/weights/{model}/{version}"


def host_compile_dir(cache_path: str, model: str, version: str) -> str:
    """Host folder of one version's published compile cache."""
    return f"{cache_path.rstrip('/')}/compile/{model}/{version}"


@dataclass(frozen=True)
class CacheMounts:
    """What a vLLM container adds to use the node cache."""

    volumes: list[dict]
    """Pod volumes."""
    mounts: list[dict]
    """Container volume mounts."""
    node_cache_dir: str
    """Where the verified weights appear in the container (the launcher's LLMPLANE_NODE_CACHE_DIR)."""
    compile_cache_dir: str | None
    """Where the node's compile cache appears (LLMPLANE_COMPILE_CACHE_DIR), or None."""


def vllm_volumes(cache_path: str, model: str, version: str, compile_cache: bool,
                 weights_version: str | None = None) -> CacheMounts:
    """The node cache as a vLLM pod mounts it: its version's weights read-only (those of `weights_version` when the
    version serves another's weights: one copy per node); its compile cache folder writable (the launcher publishes
    there only by an atomic rename, so replicas never read half a cache), per version since each engine release
    compiles its own."""
    held = weights_version or version
    volumes = [{"name": "node-weights", "hostPath": {"path": host_weights_dir(cache_path, model, held),
                                                     "type": "DirectoryOrCreate"}}]
    mounts = [{"name": "node-weights", "mountPath": MOUNT_WEIGHTS, "readOnly": True}]
    if compile_cache:
        # `Directory`, not `DirectoryOrCreate`: the prefetch creates it owned by the serving user; a root-owned
        # folder made by the kubelet would not be writable.
        volumes.append({"name": "node-compile-cache", "hostPath": {
            "path": host_compile_dir(cache_path, model, version), "type": "Directory"}})
        mounts.append({"name": "node-compile-cache", "mountPath": MOUNT_COMPILE})
    return CacheMounts(volumes, mounts, MOUNT_WEIGHTS, MOUNT_COMPILE if compile_cache else None)


def prefetch_manifest(args: NodeModelCacheArgs) -> dict:
    """What the prefetch fills: every version's files and digests, and who owns the compile folders."""
    seen: set[tuple[str, str]] = set()
    for v in args.versions:
        if (v.model, v.version) in seen:
            raise ValueError(f"node cache of pool {args.pool}: {v.model} {v.version} is listed twice; list each "
                             "deployed version once")
        seen.add((v.model, v.version))
    return {"versions": [v.manifest_entry() for v in sorted(args.versions, key=lambda v: (v.model, v.version))],
            "compile_cache": args.compile_cache, "uid": SERVING_UID}


class NodeModelCache(pulumi.ComponentResource):
    """The prefetch DaemonSet of one pool, its manifest and tool (a ConfigMap), and its service account."""

    daemonset_name: pulumi.Output[str]
    """Name of the prefetch DaemonSet."""
    service_account_name: pulumi.Output[str]
    """Name of the service account the prefetch reads weights as."""
    manifest_sha256: pulumi.Output[str]
    """Digest of the manifest: the DaemonSet rolls (and prefetches again) when it changes."""

    def __init__(self, name: str, args: NodeModelCacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:NodeModelCache", name, None, opts)
        child = children_of(self, opts)
        if not args.cache_path.startswith("/") or args.cache_path.rstrip("/") in ("", "/var", "/var/lib", "/etc"):
            raise ValueError(f"node cache of pool {args.pool}: path {args.cache_path!r} must be an absolute folder "
                             "of its own, e.g. /var/lib/llmplane/model-cache")
        if not args.versions:
            raise ValueError(f"node cache of pool {args.pool}: no version is deployed on it; leave nodeCache out "
                             "of a pool that serves nothing")
        kname = f"model-cache-{args.pool}"[:63].rstrip("-")
        labels = k8s_labels(name="llmplane-model-cache", instance=kname, component="model-cache")
        meta = {"namespace": args.namespace, "labels": labels}
        manifest = json.dumps(prefetch_manifest(args), sort_keys=True, indent=1)
        digest = hashlib.sha256(manifest.encode()).hexdigest()
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata={**meta, "name": args.service_account,
                                    **({"annotations": dict(args.service_account_annotations)}
                                       if args.service_account_annotations else {})},
            automount_service_account_token=False, opts=child)
        config = k8s.core.v1.ConfigMap(
            f"{name}-manifest", metadata={**meta, "name": kname},
            data={SCRIPT_NAME: SCRIPT_SOURCE.read_text(), "manifest.json": manifest}, opts=child)
        credential_mounts = ([{"name": "storage-credentials", "mountPath": "/var/run/secrets/llmplane-storage",
                               "readOnly": True}] if args.credentials_secret is not None else [])
        prefetch = {
            "name": "prefetch",
            "image": args.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["python3", f"{SCRIPT_DIR}/{SCRIPT_NAME}", "prefetch", "--root", "/cache",
                        "--manifest", f"{SCRIPT_DIR}/manifest.json"],
            "env": [{"name": "HOME", "value": "/tmp"},
                    *({"name": env, "value": f"/var/run/secrets/llmplane-storage/{file}"}
                      for file, env in sorted(args.credential_env.items()))],
            # No GPU: the prefetch must never hold the slot a replica needs.
            "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                          "limits": {"cpu": "2", "memory": "1Gi"}},
            # The download runs as the serving user, in the folders `own` handed over to it.
            "securityContext": {"runAsUser": SERVING_UID, "runAsGroup": SERVING_UID, "runAsNonRoot": True,
                                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "privileged": False, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"},
                             {"name": "tool", "mountPath": SCRIPT_DIR, "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}, *credential_mounts],
        }
        # Out only, to the weights' store (its addresses are not fixed: by port) and the cloud's identity endpoint.
        policy(f"{name}-netpol", args.namespace, kname, labels, {"app.kubernetes.io/instance": kname}, child,
               egress=[rule([cidr()],
                            sorted({urllib.parse.urlsplit(v.uri).port or 443 for v in args.versions})),
                       *credentials(None)])
        daemonset = k8s.apps.v1.DaemonSet(
            f"{name}-prefetch",
            metadata={**meta, "name": kname},
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/instance": kname}},
                # Pods serve nothing and verified versions survive a restart, so every node may roll at once.
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
                "template": {
                    "metadata": {"labels": labels, "annotations": {"llmplane.dev/manifest-sha256": digest}},
                    "spec": {
                        "serviceAccountName": account.metadata.name,
                        # Workload identity needs no Kubernetes API token (EKS Pod Identity projects its own).
                        "automountServiceAccountToken": False,
                        "nodeSelector": {POOL_LABEL: args.pool},
                        "tolerations": [GPU_TOLERATION],
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                        "initContainers": [_ownership(args.image), prefetch],
                        "containers": [pause_container(args.pause_image)],
                        "volumes": [
                            {"name": "cache", "hostPath": {"path": args.cache_path, "type": "DirectoryOrCreate"}},
                            {"name": "tool", "configMap": {"name": config.metadata.name, "defaultMode": 0o444}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                            *([{"name": "storage-credentials", "secret": {"secretName": args.credentials_secret,
                                                                          "defaultMode": 0o400}}]
                              if args.credentials_secret is not None else []),
                        ],
                    },
                },
            },
            opts=child,
        )
        self.daemonset_name = daemonset.metadata.name
        self.service_account_name = account.metadata.name
        self.manifest_sha256 = pulumi.Output.from_input(digest)
        self.register_outputs({"daemonset_name": self.daemonset_name,
                               "service_account_name": self.service_account_name,
                               "manifest_sha256": self.manifest_sha256})
