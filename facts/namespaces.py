"""Kubernetes namespaces that several layers name: the components create them, the monitoring rules select logs by
them."""

GATEWAY_NAMESPACE = "llmplane-gateway"
"""Namespace of the Gateway and, as Envoy Gateway deploys them beside it, its proxies."""

MONITORING_NAMESPACE = "monitoring"
"""Namespace of the monitoring plane (Prometheus, Alertmanager, Grafana, Loki, Alloy, Jaeger): the policies guard
what reaches it."""
