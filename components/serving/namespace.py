"""ServingNamespace: the namespace models run in, its API key Secret, entrypoint ConfigMap and default deny."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import namespace_baseline
from llmplane.components.options import children_of

from .model_cache import HOST_PATH_NAMESPACE_LABELS
from .streaming import SCRIPT_NAME, SCRIPT_SOURCE

SERVING_NAMESPACE = "llmplane"
API_KEY_SECRET = "vllm-api-key"
ENTRYPOINT_CONFIGMAP = "llmplane-entrypoint"
STORAGE_SECRET = "model-storage-credentials"
OUT_OF_BAND_ANNOTATION = "llmplane.dev/provide-data-with"
"""On a Secret rendered without its data: the command that creates it in the cluster."""
ENTRYPOINT_SOURCE = Path(__file__).resolve().parents[2] / "images" / "vllm" / "entrypoint.py"
"""The serving image's entrypoint, also shipped as a ConfigMap so the pinned upstream image can run it."""


@dataclass(frozen=True)
class ServingNamespaceArgs:
    """The secrets every model server in the namespace shares."""

    api_key: pulumi.Input[str]
    """API key clients present to vLLM (a Pulumi secret; stored as the Secret `vllm-api-key`)."""
    storage_credentials: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Object-storage credential files for the weights fetcher, by file name (`aws-credentials`,
    `gcp-service-account.json`); empty where workload identity reads the weights."""
    name: str = SERVING_NAMESPACE
    """Name of the namespace (one per team or environment sharing a cluster)."""
    node_cache: bool = False
    """Pods here mount a node model cache (hostPath): Pod Security is then enforced at `privileged` (hostPath is
    refused by `baseline` and `restricted`), while `restricted` is still warned about and audited."""
    secret_data_out_of_band: bool = False
    """Create the Secrets without their data (when rendering to files, where the Kubernetes provider would write
    data in clear); each then says in an annotation how to provide it."""


class ServingNamespace(pulumi.ComponentResource):
    """Namespace `llmplane`, restricted Pod Security, the API key as a Kubernetes Secret, deny-by-default ingress
    and egress."""

    namespace: pulumi.Output[str]
    """Name of the namespace."""
    api_key_secret: pulumi.Output[str]
    """Name of the Secret with the API key under `api-key`."""
    entrypoint_configmap: pulumi.Output[str]
    """Name of the ConfigMap holding `entrypoint.py` (fetch, verify, exec vllm serve) and the launcher
    `weights_cache.py` (stream and/or read the node cache, verify every file, exec vllm serve)."""

    storage_secret: pulumi.Output[str] | None
    """Name of the Secret holding object-storage credential files, when the environment supplies any."""

    def __init__(self, name: str, args: ServingNamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:ServingNamespace", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="llmplane", instance=args.name, component="serving")
        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.name,
                "labels": {**labels, **(HOST_PATH_NAMESPACE_LABELS if args.node_cache
                                        else {"pod-security.kubernetes.io/enforce": "restricted"})},
            },
            opts=child,
        )
        meta = {"namespace": ns.metadata.name, "labels": labels}

        def secret(resource: str, secret_name: str, data: dict[str, pulumi.Input[str]]) -> k8s.core.v1.Secret:
            if not args.secret_data_out_of_band:
                return k8s.core.v1.Secret(resource, metadata={**meta, "name": secret_name}, type="Opaque",
                                          string_data={k: pulumi.Output.secret(v) for k, v in data.items()},
                                          opts=child)
            files = " ".join(f"--from-file={key}=<file>" for key in data)
            how = f"kubectl -n {args.name} create secret generic {secret_name} {files}"
            pulumi.log.warn(f"Secret {args.name}/{secret_name} is rendered without its data; provide it "
                            f"in the cluster with: {how}", resource=self)
            return k8s.core.v1.Secret(resource, type="Opaque", opts=child, metadata={
                **meta, "name": secret_name, "annotations": {OUT_OF_BAND_ANNOTATION: how}})

        api_key_secret = secret(f"{name}-api-key", API_KEY_SECRET, {"api-key": args.api_key})
        self.storage_secret = None
        if args.storage_credentials:
            self.storage_secret = secret(f"{name}-storage-credentials", STORAGE_SECRET,
                                         dict(args.storage_credentials)).metadata.name
        entrypoint = k8s.core.v1.ConfigMap(
            f"{name}-entrypoint",
            metadata={**meta, "name": ENTRYPOINT_CONFIGMAP},
            data={"entrypoint.py": ENTRYPOINT_SOURCE.read_text(), SCRIPT_NAME: SCRIPT_SOURCE.read_text()},
            opts=child,
        )
        # Deny in and out by default, DNS kept; each workload's own policy opens what it needs.
        namespace_baseline(name, ns.metadata.name, labels, child)
        self.namespace = ns.metadata.name
        self.api_key_secret = api_key_secret.metadata.name
        self.entrypoint_configmap = entrypoint.metadata.name
        self.register_outputs({"namespace": self.namespace, "api_key_secret": self.api_key_secret,
                               "entrypoint_configmap": self.entrypoint_configmap,
                               "storage_secret": self.storage_secret})
