"""KedaInstall: KEDA's operator in a cluster, so ScaledObjects can scale models on Prometheus queries."""

from __future__ import annotations

import pulumi
from llmplane.components.clusters.charts import KEDA
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import (
    PROMETHEUS_PODS,
    PROMETHEUS_QUERY_PORT,
    api_server,
    from_api_server,
    local,
    namespace_baseline,
    pods,
    policy,
    rule,
)
from llmplane.components.options import children_of
from llmplane.facts.namespaces import MONITORING_NAMESPACE

KEDA_NAMESPACE = "keda"
"""Namespace of KEDA and of its HTTP add-on (their Services' addresses depend on it)."""
KEDA_OPERATOR_LABELS = {"app.kubernetes.io/name": "keda-operator"}
"""Labels of KEDA's operator pods, the one that queries Prometheus for the ScaledObjects' triggers (kedacore/charts
v2.18.1 keda/templates/manager/deployment.yaml: `app.kubernetes.io/name: {{ .Values.operator.name }}`)."""
METRICS_SERVER_LABELS = {"app.kubernetes.io/name": "keda-operator-metrics-apiserver"}
"""KEDA's metrics API server (metrics-server/deployment.yaml): the API server calls it on 6443
(`service.portHttpsTarget`) for the external metrics the HPAs read; it asks the operator on 9666
(manager/deployment.yaml's `containerPort: 9666`)."""
WEBHOOK_LABELS = {"app.kubernetes.io/name": "keda-admission-webhooks"}
"""KEDA's admission webhooks (webhooks/deployment.yaml), called by the API server on 9443."""
OPERATOR_GRPC_PORT = 9666
METRICS_SERVER_PORT = 6443
WEBHOOK_PORT = 9443


class KedaInstall(pulumi.ComponentResource):
    """The KEDA Helm release (chart pinned), in its own namespace, and that namespace's NetworkPolicies."""

    namespace: pulumi.Output[str]
    """Namespace KEDA runs in."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:autoscaling:KedaInstall", name, None, opts)
        release = KEDA.release(
            f"{name}-keda", KEDA_NAMESPACE,
            {"resources": {"operator": {"requests": {"cpu": "100m", "memory": "128Mi"}}}},
            children_of(self, opts), create_namespace=True)
        keda_policies(name, release.namespace, children_of(self, opts, depends_on=[release]))
        self.namespace = release.namespace
        self.register_outputs({"namespace": self.namespace})


def keda_policies(name: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> None:
    """KEDA's namespace: default deny; the operator queries Prometheus and answers the metrics server; the API
    server calls the metrics server and the webhooks; all three watch the API."""
    labels = k8s_labels(name="keda", instance=KEDA_NAMESPACE, component="autoscaling")
    namespace_baseline(f"{name}-netpol", namespace, labels, opts)
    policy(f"{name}-netpol-operator", namespace, "keda-operator", labels, KEDA_OPERATOR_LABELS, opts,
           ingress=[rule([local(METRICS_SERVER_LABELS)], [OPERATOR_GRPC_PORT])],
           egress=[rule([pods(MONITORING_NAMESPACE, PROMETHEUS_PODS)], [PROMETHEUS_QUERY_PORT]), api_server()])
    policy(f"{name}-netpol-metrics-apiserver", namespace, "keda-metrics-apiserver", labels, METRICS_SERVER_LABELS,
           opts, ingress=[from_api_server(METRICS_SERVER_PORT)],
           egress=[rule([local(KEDA_OPERATOR_LABELS)], [OPERATOR_GRPC_PORT]), api_server()])
    policy(f"{name}-netpol-admission-webhooks", namespace, "keda-admission-webhooks", labels, WEBHOOK_LABELS, opts,
           ingress=[from_api_server(WEBHOOK_PORT)], egress=[api_server()])
