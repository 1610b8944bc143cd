"""The monitoring namespace's trust boundary: who may write the series and logs the platform decides from, who may
read them, and the guard that puts Prometheus' remote-write receiver on a port of its own.

Pod labels are the ones the charts (versions pinned in .charts) and operators really put on the pods:
- Prometheus, Alertmanager: prometheus-operator `makeSelectorLabels` (pkg/prometheus/server/operator.go,
  pkg/alertmanager/operator.go: `app.kubernetes.io/name: prometheus|alertmanager`);
- the operator and its admission-patch Jobs: kube-prometheus-stack 79.5.0
  templates/prometheus-operator/_prometheus-operator.tpl (`app: kube-prometheus-stack-operator`) and
  admission-webhooks/job-patch/job-*.yaml (`app: kube-prometheus-stack-admission-create|patch`);
- Grafana 10.1.4 and kube-state-metrics 6.4.1 (its subcharts): `app.kubernetes.io/name: grafana|kube-state-metrics`;
- Loki 6.46.0: templates/single-binary/_helpers-single-binary.tpl, gateway/_helpers-gateway.tpl and
  memcached/_memcached-statefulset.tpl (`app.kubernetes.io/name: loki` with the component);
- Alloy 1.4.0 and the DCGM exporter 4.6.0: `app.kubernetes.io/name: alloy|dcgm-exporter` (their _helpers.tpl).
The Prometheus node exporter runs with hostNetwork (kube-prometheus-stack's prometheus-node-exporter values), so
no NetworkPolicy selects it; Prometheus reaches it, and the kubelets, at the nodes' addresses.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import yaml
from llmplane.components.autoscaling.keda import KEDA_NAMESPACE, KEDA_OPERATOR_LABELS
from llmplane.components.network_policy import (
    KUBE_DNS_LABELS,
    PROMETHEUS_PODS,
    PROMETHEUS_QUERY_PORT,
    api_server,
    cidr,
    credentials,
    from_api_server,
    https_anywhere,
    local,
    namespace_baseline,
    pods,
    policy,
    rule,
)
from llmplane.components.serving.namespace import SERVING_NAMESPACE

ALERTMANAGER_PODS = {"app.kubernetes.io/name": "alertmanager"}
OPERATOR_PODS = {"app": "kube-prometheus-stack-operator"}
ADMISSION_JOB_PODS = ({"app": "kube-prometheus-stack-admission-create"},
                      {"app": "kube-prometheus-stack-admission-patch"})
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana"}
KUBE_STATE_METRICS_PODS = {"app.kubernetes.io/name": "kube-state-metrics"}
LOKI_PODS = {"app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "single-binary"}
LOKI_GATEWAY_PODS = {"app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "gateway"}
LOKI_CACHE_PODS = ({"app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "memcached-chunks-cache"},
                   {"app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "memcached-results-cache"})
ALLOY_PODS = {"app.kubernetes.io/name": "alloy"}
DCGM_EXPORTER_PODS = {"app.kubernetes.io/name": "dcgm-exporter"}

PROMETHEUS_LOCAL_PORT = 9090
"""Prometheus itself, on loopback only (`listenLocal`: `--web.listen-address=127.0.0.1:9090`, prometheus-operator
pkg/prometheus/promcfg.go)."""
PROMETHEUS_WRITE_PORT = 9092
"""The guard's remote-write port: only `/api/v1/write`, admitted only from Loki's ruler."""
RELOADER_PORT = 8080
"""config-reloader's metrics port in Prometheus' and Alertmanager's pods (chart value `reloaderWebPort`)."""
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
OPERATOR_PORT = 10250
"""The operator's HTTPS port (metrics and admission webhook; chart value `prometheusOperator.tls.internalPort`)."""
KUBE_STATE_METRICS_PORT = 8080
LOKI_HTTP_PORT = 3100
LOKI_GRPC_PORT = 9095
LOKI_MEMBERLIST_PORT = 7946
LOKI_GATEWAY_PORT = 8080
"""The Loki gateway's nginx port (chart value `gateway.containerPort`; its Service's port 80 targets it)."""
MEMCACHED_PORT = 11211
DCGM_EXPORTER_PORT = 9400
NODE_METRICS_PORTS = (9100, 10250)
"""Node exporter (hostNetwork) and the kubelets' cAdvisor/metrics: on the nodes' addresses."""
SERVING_METRICS_PORTS = (8000, 9090)
"""What Prometheus scrapes in the serving namespace: vLLM's `/metrics` on its API port, and the `metrics` port of
the endpoint pickers, the feedback service and the shadow comparators."""
COREDNS_METRICS_PORT = 9153
WRITE_PATHS = ("/api/v1/write", "/api/v1/otlp")
"""Prometheus' write endpoints: the remote-write receiver and the OTLP receiver (off by default; closed anyway)."""

GUARD_CONFIGMAP = "prometheus-write-guard"
GUARD_IMAGE = "docker.io/envoyproxy/envoy:distroless-v1.38.1"
"""The Envoy the gateway's proxies run (Envoy Gateway v1.8.1's DefaultEnvoyProxyImage, api/v1alpha1/shared_types.go):
one proxy build serves both; move it with facts.images.ENVOY_GATEWAY_VERSION."""


def _listener(name: str, port: int, routes: list[dict]) -> dict:
    """An HTTP listener on every address of the pod, paths normalised (RFC 3986, merged slashes, escaped slashes
    refused) before they are matched, so `//api/v1/write` or `/api/v1/%77rite` cannot pass the guard."""
    return {"name": name, "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                             "HttpConnectionManager",
                    "stat_prefix": name,
                    "normalize_path": True,
                    "merge_slashes": True,
                    "path_with_escaped_slashes_action": "REJECT_REQUEST",
                    "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                }}]}]}


def guard_config() -> dict:
    """Envoy's static configuration: the query port forwards everything but the write paths (403), the write port
    only `/api/v1/write` (404 for the rest), both to Prometheus on loopback. No admin listener."""
    forward = {"route": {"cluster": "prometheus", "timeout": "130s"}}  # above Prometheus' 2m query timeout
    return {"static_resources": {
        "listeners": [
            _listener("query", PROMETHEUS_QUERY_PORT, [
                *({"match": {"prefix": path}, "direct_response": {"status": 403}} for path in WRITE_PATHS),
                {"match": {"prefix": "/"}, **forward}]),
            _listener("remote_write", PROMETHEUS_WRITE_PORT, [
                {"match": {"path": "/api/v1/write"}, **forward},
                {"match": {"prefix": "/"}, "direct_response": {"status": 404}}]),
        ],
        "clusters": [{"name": "prometheus", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
            "cluster_name": "prometheus", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": PROMETHEUS_LOCAL_PORT}}}}]}]}}],
    }}


def prometheus_guard_values() -> dict:
    """kube-prometheus-stack values that hide Prometheus behind the guard: Prometheus on loopback, the Envoy
    sidecar on the pod's ports, the Service's 9090 sent to the query port (the chart's `service.targetPort`, "to be
    used with a proxy extraContainer port") and a `remote-write` Service port for Loki's ruler."""
    probe = {"tcpSocket": {"port": PROMETHEUS_QUERY_PORT}, "periodSeconds": 10}
    return {
        "service": {"targetPort": PROMETHEUS_QUERY_PORT, "additionalPorts": [
            {"name": "remote-write", "port": PROMETHEUS_WRITE_PORT, "targetPort": PROMETHEUS_WRITE_PORT}]},
        "prometheusSpec": {
            "listenLocal": True,
            "containers": [{
                "name": "write-guard",
                "image": GUARD_IMAGE,
                "args": ["--config-path", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
                "ports": [{"name": "http-query", "containerPort": PROMETHEUS_QUERY_PORT},
                          {"name": "remote-write", "containerPort": PROMETHEUS_WRITE_PORT}],
                "readinessProbe": probe,
                "livenessProbe": {**probe, "initialDelaySeconds": 10},
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "write-guard", "mountPath": "/etc/envoy", "readOnly": True}],
            }],
            "volumes": [{"name": "write-guard", "configMap": {"name": GUARD_CONFIGMAP}}],
        },
    }


def guard_configmap(resource_name: str, namespace: pulumi.Input[str], labels: dict[str, str],
                    opts: pulumi.ResourceOptions) -> k8s.core.v1.ConfigMap:
    """The guard's configuration, mounted into the Prometheus pod."""
    return k8s.core.v1.ConfigMap(resource_name, metadata={
        "name": GUARD_CONFIGMAP, "namespace": namespace, "labels": labels},
        data={"envoy.yaml": yaml.safe_dump(guard_config(), sort_keys=False)}, opts=opts)


def monitoring_policies(name: str, namespace: pulumi.Input[str], labels: dict[str, str], cloud: str,
                        opts: pulumi.ResourceOptions) -> list[k8s.networking.v1.NetworkPolicy]:
    """The monitoring namespace's default deny and each allowed flow (docs/network.md lists them with reasons).
    Jaeger's policy is TracingBackend's."""
    def allow(suffix: str, selector: dict[str, str], *, ingress: list[dict] = (), egress: list[dict] = ()):
        return policy(f"{name}-netpol-{suffix}", namespace, suffix, labels, selector, opts,
                      ingress=ingress, egress=egress)

    prometheus, grafana, loki = local(PROMETHEUS_PODS), local(GRAFANA_PODS), local(LOKI_PODS)
    return [
        *namespace_baseline(f"{name}-netpol", namespace, labels, opts),
        allow("prometheus", PROMETHEUS_PODS, ingress=[
            rule([grafana, prometheus, pods(KEDA_NAMESPACE, KEDA_OPERATOR_LABELS)], [PROMETHEUS_QUERY_PORT]),
            rule([loki], [PROMETHEUS_WRITE_PORT]),
            rule([prometheus], [RELOADER_PORT]),
        ], egress=[
            rule([prometheus], [PROMETHEUS_QUERY_PORT, RELOADER_PORT]),
            rule([local(ALERTMANAGER_PODS)], [ALERTMANAGER_PORT, RELOADER_PORT]),
            rule([grafana], [GRAFANA_PORT]),
            rule([local(OPERATOR_PODS)], [OPERATOR_PORT]),
            rule([local(KUBE_STATE_METRICS_PODS)], [KUBE_STATE_METRICS_PORT]),
            rule([local(DCGM_EXPORTER_PODS)], [DCGM_EXPORTER_PORT]),
            rule([pods(SERVING_NAMESPACE)], SERVING_METRICS_PORTS),
            rule([pods("kube-system", KUBE_DNS_LABELS)], [COREDNS_METRICS_PORT]),
            rule([cidr()], NODE_METRICS_PORTS),
            api_server(),  # service discovery, and the API server's own /metrics
        ]),
        allow("alertmanager", ALERTMANAGER_PODS, ingress=[
            rule([prometheus, grafana], [ALERTMANAGER_PORT]),
            rule([prometheus], [RELOADER_PORT]),
        ], egress=[https_anywhere()]),  # notification receivers (chat, paging) outside the cluster
        allow("grafana", GRAFANA_PODS, ingress=[rule([prometheus], [GRAFANA_PORT])], egress=[
            rule([prometheus], [PROMETHEUS_QUERY_PORT]),
            rule([local(LOKI_GATEWAY_PODS)], [LOKI_GATEWAY_PORT]),
            rule([local(ALERTMANAGER_PODS)], [ALERTMANAGER_PORT]),
            api_server(),  # its sidecars load dashboards and datasources from ConfigMaps
        ]),
        allow("prometheus-operator", OPERATOR_PODS, ingress=[
            from_api_server(OPERATOR_PORT), rule([prometheus], [OPERATOR_PORT])], egress=[api_server()]),
        *(allow(job["app"].removeprefix("kube-prometheus-stack-"), job, egress=[api_server()])
          for job in ADMISSION_JOB_PODS),
        allow("kube-state-metrics", KUBE_STATE_METRICS_PODS,
              ingress=[rule([prometheus], [KUBE_STATE_METRICS_PORT])], egress=[api_server()]),
        allow("dcgm-exporter", DCGM_EXPORTER_PODS, ingress=[rule([prometheus], [DCGM_EXPORTER_PORT])]),
        allow("loki", LOKI_PODS, ingress=[
            rule([local(ALLOY_PODS), local(LOKI_GATEWAY_PODS)], [LOKI_HTTP_PORT]),
            rule([loki], [LOKI_GRPC_PORT, LOKI_MEMBERLIST_PORT]),
        ], egress=[
            rule([prometheus], [PROMETHEUS_WRITE_PORT]),  # the ruler's recording rules
            rule([loki], [LOKI_GRPC_PORT, LOKI_MEMBERLIST_PORT]),
            rule([local(p) for p in LOKI_CACHE_PODS], [MEMCACHED_PORT]),
            *([https_anywhere(), *credentials(cloud)] if cloud != "onprem" else []),  # the log bucket (S3, GCS)
            api_server(),  # the rules sidecar watches ConfigMaps
        ]),
        allow("loki-gateway", LOKI_GATEWAY_PODS, ingress=[rule([grafana], [LOKI_GATEWAY_PORT])],
              egress=[rule([loki], [LOKI_HTTP_PORT])]),
        *(allow(cache["app.kubernetes.io/component"], cache, ingress=[rule([loki], [MEMCACHED_PORT])])
          for cache in LOKI_CACHE_PODS),
        allow("alloy", ALLOY_PODS, egress=[
            rule([loki], [LOKI_HTTP_PORT]),
            api_server(),  # pod discovery, and loki.source.kubernetes tails logs through the API server
        ]),
    ]
