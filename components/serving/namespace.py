"""ServingNamespace: the namespace models run in, with its API key Secret and a default-deny ingress policy."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.labels import k8s_labels

SERVING_NAMESPACE = "llmplane"
API_KEY_SECRET = "vllm-api-key"


class ServingNamespace(pulumi.ComponentResource):
    """Namespace `llmplane`, restricted Pod Security, the API key as a Kubernetes Secret, deny-by-default ingress."""

    namespace: pulumi.Output[str]
    """Name of the namespace."""
    api_key_secret: pulumi.Output[str]
    """Name of the Secret with the API key under `api-key`."""

    def __init__(self, name: str, api_key: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:ServingNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = k8s_labels(name="llmplane", instance=SERVING_NAMESPACE, component="serving")
        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": SERVING_NAMESPACE,
                "labels": {**labels, "pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=child,
        )
        meta = {"namespace": ns.metadata.name, "labels": labels}
        secret = k8s.core.v1.Secret(
            f"{name}-api-key",
            metadata={**meta, "name": API_KEY_SECRET},
            type="Opaque",
            string_data={"api-key": pulumi.Output.secret(api_key)},
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata={**meta, "name": "default-deny-ingress"},
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
            opts=child,
        )
        self.namespace = ns.metadata.name
        self.api_key_secret = secret.metadata.name
        self.register_outputs({"namespace": self.namespace, "api_key_secret": self.api_key_secret})
