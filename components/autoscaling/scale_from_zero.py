"""Scale from zero: requests to a model version with no replica are held by KEDA's HTTP add-on interceptor,
counted, and released to the first replica once it is ready.

At zero replicas no vLLM pod reports a queue, so the version's Prometheus triggers cannot fire. The HTTP add-on
(chart `keda-add-ons-http`, pinned) puts an interceptor in front: while a version is at zero, its route sends
its traffic to the interceptor's proxy Service, which holds each request until the version's Service has a
ready endpoint (up to the route's readiness timeout) and then forwards it; the add-on's external scaler reports
the pending requests to KEDA.

KEDA lets one ScaledObject own a workload (its admission webhook refuses a second), and an HTTPScaledObject
creates its own, so it cannot sit beside the queue-depth ScaledObject of `ModelAutoscaler`. The add-on's
`InterceptorRoute` (http.keda.sh/v1beta1, since v0.14) carries the routing alone; the version's existing
ScaledObject gains one `external-push` trigger on the add-on's external scaler naming that route
(`http_trigger`), so one ScaledObject scales on queue depth, KV-cache usage and held requests together
(kedacore/http-add-on v0.15.0: `pkg/k8s/scaledobject.go` InterceptorRouteKey = "interceptorRoute";
`operator/apis/http/v1beta1/interceptorroute_types.go`).

Routing: the model's HTTPRoute rewrites `/<model>/v1` to `/v1` for every version alike, so the interceptor tells
versions apart by a header the route adds on the interceptor backend (`interceptor_backend_ref`); the route
reaches the interceptor's Service in KEDA's namespace through a ReferenceGrant there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.autoscaling.keda import KEDA_NAMESPACE, KEDA_OPERATOR_LABELS
from llmplane.components.clusters.charts import Chart
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import PROXY_PODS, api_server, local, pods, policy, rule
from llmplane.components.options import children_of
from llmplane.components.serving.engine_args import VLLM_PORT
from llmplane.facts.namespaces import GATEWAY_NAMESPACE

KEDA_HTTP_ADDON = Chart("keda-add-ons-http", "0.15.0", "https://kedacore.github.io/charts")
"""The KEDA HTTP add-on chart, pinned (kedacore/charts `http-add-on/Chart.yaml`: version and appVersion 0.15.0)."""
INTERCEPTOR_SERVICE = "keda-add-ons-http-interceptor-proxy"
"""The interceptor's proxy Service (chart: `<chart name>-interceptor-proxy`)."""
INTERCEPTOR_PORT = 8080
"""Its port (chart value `interceptor.proxy.port`)."""
INTERCEPTOR_ADMIN_PORT = 9090
"""The interceptor's admin port, which the scaler reads queue counts from (chart value `interceptor.admin.port`)."""
SCALER_PORT = 9090
INTERCEPTOR_PODS = {"app.kubernetes.io/name": "http-add-on", "app.kubernetes.io/component": "interceptor"}
SCALER_PODS = {"app.kubernetes.io/name": "http-add-on", "app.kubernetes.io/component": "scaler"}
ADDON_OPERATOR_PODS = {"app.kubernetes.io/name": "http-add-on", "app.kubernetes.io/component": "operator"}
"""Labels of the add-on's pods (kedacore/charts http-add-on 0.15.0 templates/{interceptor,scaler,operator}/
deployment.yaml)."""
EXTERNAL_SCALER = f"keda-add-ons-http-external-scaler.{KEDA_NAMESPACE}:{SCALER_PORT}"
"""The add-on's external scaler, which KEDA's `external-push` trigger streams from (chart `scaler.grpcPort`)."""
BACKEND_HEADER = "x-llmplane-backend"
"""Header the route sets on requests it sends to the interceptor: the version's Service name."""


@dataclass(frozen=True)
class HeldVersion:
    """One model version that may scale to zero."""

    service: str
    """The version's Service (VllmService.service_name; also its Deployment's name)."""
    port: int
    """The Service's port."""
    model: str
    """Model name (labels)."""
    version: str
    """Version (labels)."""
    hold_seconds: int
    """How long the interceptor holds a request for the first replica: the version's worst cold start."""
    generation_seconds: int
    """Longest generation: non-streaming answers send their headers only at the end."""
    concurrency_per_replica: int
    """Requests one replica serves at once (the engine's maxNumSeqs): the held-request trigger's target."""


@dataclass(frozen=True)
class ScaleFromZeroArgs:
    """The cluster's scaled-to-zero versions and where they run."""

    namespace: pulumi.Input[str]
    """Namespace of the versions' Services (the InterceptorRoutes live beside them)."""
    versions: Sequence[HeldVersion]
    """Versions whose minimum replica count is 0."""
    route_namespace: str
    """Namespace of the models' HTTPRoutes (allowed to reference the interceptor's Service)."""
    install_addon: bool = True
    """Install the add-on's Helm chart (False where it is installed otherwise)."""


def route_name(service: str) -> str:
    """Name of a version's InterceptorRoute (its Service's name)."""
    return service


def http_trigger(service: str) -> dict:
    """The `external-push` trigger ModelAutoscaler adds to the version's ScaledObject: held requests activate
    0→1 and count toward replicas like any other trigger."""
    return {"type": "external-push", "name": "held-requests",
            "metadata": {"scalerAddress": EXTERNAL_SCALER, "interceptorRoute": route_name(service)}}


def interceptor_backend_ref(service: str, weight: int | None = None) -> dict:
    """The HTTPRoute backend that sends a version's share of traffic through the interceptor while it may be at
    zero: the interceptor's Service, with the header that names the version."""
    ref = {"kind": "Service", "name": INTERCEPTOR_SERVICE, "namespace": KEDA_NAMESPACE, "port": INTERCEPTOR_PORT,
           "filters": [{"type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": BACKEND_HEADER, "value": service}]}}]}
    return ref if weight is None else {**ref, "weight": weight}


def _duration(seconds: int) -> str:
    return f"{seconds}s"


def interceptor_route_spec(held: HeldVersion) -> dict:
    """InterceptorRoute spec: the version's requests (by header), held up to its cold start, then forwarded."""
    return {
        "target": {"service": held.service, "port": held.port},
        "rules": [{"hosts": ["*"], "headers": [{"name": BACKEND_HEADER, "value": held.service}]}],
        "scalingMetric": {"concurrency": {"targetValue": held.concurrency_per_replica}},
        "timeouts": {"readiness": _duration(held.hold_seconds),
                     "responseHeader": _duration(held.generation_seconds),
                     "request": _duration(held.hold_seconds + held.generation_seconds)},
    }


class ScaleFromZero(pulumi.ComponentResource):
    """The HTTP add-on, one InterceptorRoute per scaled-to-zero version, and the grant that lets the models'
    routes reach the interceptor."""

    interceptor_service: pulumi.Output[str]
    """`<namespace>/<name>:<port>` of the interceptor's proxy Service."""
    route_names: pulumi.Output[list[str]]
    """Names of the InterceptorRoutes, one per held version."""

    def __init__(self, name: str, args: ScaleFromZeroArgs, opts: pulumi.ResourceOptions | None = None):
        """`opts.depends_on` must include the KEDA install: the add-on's chart creates a ScaledObject."""
        super().__init__("llmplane:autoscaling:ScaleFromZero", name, None, opts)
        child = children_of(self, opts)
        services = [v.service for v in args.versions]
        if len(set(services)) != len(services):
            raise ValueError(f"scale from zero: a version is listed twice ({sorted(services)}); list each once")
        for held in args.versions:
            for what, value in (("hold_seconds", held.hold_seconds), ("generation_seconds", held.generation_seconds),
                                ("concurrency_per_replica", held.concurrency_per_replica)):
                if value < 1:
                    raise ValueError(f"scale from zero of {held.model} {held.version}: {what} {value} is below 1; "
                                     "give the version's cold start, longest generation and maxNumSeqs")
        labels = k8s_labels(name="keda-add-ons-http", instance=name, component="scale-from-zero")
        depends: list[pulumi.Resource] = []
        if args.install_addon:
            depends.append(KEDA_HTTP_ADDON.release(
                f"{name}-http-addon", KEDA_NAMESPACE,
                {"interceptor": {"replicas": {"min": 2}},
                 "crds": {"install": True}},
                child))
            self._policies(name, labels, args.namespace, children_of(self, opts, depends_on=depends))
        after_addon = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=depends))
        k8s.apiextensions.CustomResource(
            f"{name}-grant", api_version="gateway.networking.k8s.io/v1", kind="ReferenceGrant",
            metadata={"name": "llmplane-routes-to-interceptor", "namespace": KEDA_NAMESPACE, "labels": labels},
            spec={"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                            "namespace": args.route_namespace}],
                  "to": [{"group": "", "kind": "Service", "name": INTERCEPTOR_SERVICE}]},
            opts=after_addon)
        for held in args.versions:
            k8s.apiextensions.CustomResource(
                f"{name}-{held.service}", api_version="http.keda.sh/v1beta1", kind="InterceptorRoute",
                metadata={"name": route_name(held.service), "namespace": args.namespace,
                          "labels": k8s_labels(name="vllm", instance=held.service, component="scale-from-zero",
                                               version=held.version, model=held.model, model_version=held.version)},
                spec=interceptor_route_spec(held), opts=after_addon)
        self.interceptor_service = pulumi.Output.from_input(
            f"{KEDA_NAMESPACE}/{INTERCEPTOR_SERVICE}:{INTERCEPTOR_PORT}")
        self.route_names = pulumi.Output.from_input([route_name(s) for s in services])
        self.register_outputs({"interceptor_service": self.interceptor_service, "route_names": self.route_names})

    def _policies(self, name: str, labels: dict[str, str], serving_namespace: pulumi.Input[str],
                  opts: pulumi.ResourceOptions) -> None:
        """The add-on's flows in KEDA's namespace (whose default deny KedaInstall sets): the gateway's proxies send
        held versions' requests to the interceptor, which forwards them to vLLM; the scaler reads the interceptor's
        queue and KEDA's operator streams from the scaler; all three watch the API."""
        serving = {"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": pulumi.Output.from_input(serving_namespace)}}}
        policy(f"{name}-netpol-interceptor", KEDA_NAMESPACE, "http-add-on-interceptor", labels, INTERCEPTOR_PODS,
               opts, ingress=[rule([pods(GATEWAY_NAMESPACE, PROXY_PODS)], [INTERCEPTOR_PORT]),
                              rule([local(SCALER_PODS)], [INTERCEPTOR_ADMIN_PORT])],
               egress=[rule([serving], [VLLM_PORT]), api_server()])
        policy(f"{name}-netpol-scaler", KEDA_NAMESPACE, "http-add-on-scaler", labels, SCALER_PODS, opts,
               ingress=[rule([local(KEDA_OPERATOR_LABELS)], [SCALER_PORT])],
               egress=[rule([local(INTERCEPTOR_PODS)], [INTERCEPTOR_ADMIN_PORT]), api_server()])
        policy(f"{name}-netpol-operator", KEDA_NAMESPACE, "http-add-on-operator", labels, ADDON_OPERATOR_PODS, opts,
               egress=[api_server()])
        policy(f"{name}-netpol-keda-to-scaler", KEDA_NAMESPACE, "keda-operator-to-http-scaler", labels,
               KEDA_OPERATOR_LABELS, opts, egress=[rule([local(SCALER_PODS)], [SCALER_PORT])])
