"""Observability: Prometheus, Grafana, Loki, DCGM and our dashboards and alerts, per cluster."""
