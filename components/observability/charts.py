"""Helm charts of the monitoring stack, pinned: repository, chart and version in one place."""

from llmplane.components.clusters.charts import Chart

KUBE_PROMETHEUS_STACK = Chart("kube-prometheus-stack", "79.5.0", "https://prometheus-community.github.io/helm-charts")
LOKI = Chart("loki", "6.46.0", "https://grafana.github.io/helm-charts")
ALLOY = Chart("alloy", "1.4.0", "https://grafana.github.io/helm-charts")
DCGM_EXPORTER = Chart("dcgm-exporter", "4.6.0", "https://nvidia.github.io/dcgm-exporter/helm-charts")
