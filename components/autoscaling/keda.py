"""KedaInstall: KEDA's operator in a cluster, so ScaledObjects can scale models on Prometheus queries."""

from __future__ import annotations

import pulumi
from llmplane.components.clusters.charts import KEDA
from llmplane.components.options import children_of

KEDA_NAMESPACE = "keda"
"""Namespace of KEDA and of its HTTP add-on (their Services' addresses depend on it)."""


class KedaInstall(pulumi.ComponentResource):
    """The KEDA Helm release (chart pinned), in its own namespace."""

    namespace: pulumi.Output[str]
    """Namespace KEDA runs in."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:autoscaling:KedaInstall", name, None, opts)
        release = KEDA.release(
            f"{name}-keda", KEDA_NAMESPACE,
            {"resources": {"operator": {"requests": {"cpu": "100m", "memory": "128Mi"}}}},
            children_of(self, opts), create_namespace=True)
        self.namespace = release.namespace
        self.register_outputs({"namespace": self.namespace})
