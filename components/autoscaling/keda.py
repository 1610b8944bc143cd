"""KedaInstall: KEDA's operator in a cluster, so ScaledObjects can scale models on Prometheus queries."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.clusters.charts import KEDA

KEDA_NAMESPACE = "keda"


class KedaInstall(pulumi.ComponentResource):
    """The KEDA Helm release (chart pinned), in its own namespace."""

    namespace: pulumi.Output[str]
    """Namespace KEDA runs in."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:autoscaling:KedaInstall", name, None, opts)
        release = k8s.helm.v3.Release(
            f"{name}-keda", chart=KEDA.chart, version=KEDA.version, repository_opts={"repo": KEDA.repo},
            namespace=KEDA_NAMESPACE, create_namespace=True, atomic=True,
            values={"resources": {"operator": {"requests": {"cpu": "100m", "memory": "128Mi"}}}},
            opts=pulumi.ResourceOptions(parent=self))
        self.namespace = release.namespace
        self.register_outputs({"namespace": self.namespace})
