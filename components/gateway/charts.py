"""Helm charts and images of the gateway layer, pinned: repository, chart and version in one place."""

from llmplane.components.clusters.charts import Chart
from llmplane.facts.images import CERT_MANAGER_VERSION, ENVOY_GATEWAY_VERSION

ENVOY_GATEWAY = Chart("gateway-helm", f"v{ENVOY_GATEWAY_VERSION}", "oci://docker.io/envoyproxy")
"""Envoy Gateway v1.8.1: the release Envoy AI Gateway v1.1.0 is built on and documents (its go.mod requires
github.com/envoyproxy/gateway v1.8.1; site/docs/compatibility.md "v1.8.1+ (Envoy Proxy v1.38.x)"; release notes
"Built on Envoy Gateway v1.8.1"), not the newer v1.9.x, which no AI Gateway release names. Its chart is published
with the release tag as version and brings the Gateway API and Envoy Gateway CRDs."""
AI_GATEWAY_CRDS = Chart("ai-gateway-crds-helm", "v1.1.0", "oci://docker.io/envoyproxy")
"""Envoy AI Gateway's CRDs, v1.1.0 (installed before its controller, as its install guide orders)."""
AI_GATEWAY = Chart("ai-gateway-helm", "v1.1.0", "oci://docker.io/envoyproxy")
"""Envoy AI Gateway v1.1.0: the extension server through which Envoy Gateway resolves InferencePool backendRefs
(Envoy Gateway v1.8.1 has no InferencePool support of its own; its extension manager hands those backends to this
controller, which wires each pool's endpoint picker as ext_proc). Its module is not on the Go proxy, so the version
comes from the project's published install records (ai-gateway-helm v1.0.0 with Envoy Gateway v1.8.1, v1.1.0 after)."""
CERT_MANAGER = Chart("cert-manager", f"v{CERT_MANAGER_VERSION}", "https://charts.jetstack.io")
"""cert-manager v1.21.2 (newest github.com/cert-manager/cert-manager release on the Go proxy)."""
EXTERNAL_DNS = Chart("external-dns", "1.22.0", "https://kubernetes-sigs.github.io/external-dns/")
"""external-dns chart 1.22.0, app 0.22.0 (charts/external-dns/Chart.yaml in the module sigs.k8s.io/external-dns
v0.23.0, whose chart had not moved on yet)."""
JAEGER = Chart("jaeger", "4.11.1", "https://jaegertracing.github.io/helm-charts")
"""Jaeger chart 4.11.1, Jaeger 2.19.0 (tag jaeger-4.11.1 of github.com/jaegertracing/helm-charts), Apache-2.0."""

VALKEY_IMAGE = ("valkey/valkey:8.1.3-alpine"
                "@sha256:d827e7f7552cdee40cc7482dbae9da020f42bc47669af6f71182a4ef76a22773")
"""Valkey 8.1.3 (BSD-3-Clause, speaks Redis' protocol) for the global rate limiter's counters, by digest (as pinned
for that patch tag in several public projects' scripts). Valkey rather than Redis: Redis 7.4+ is no longer under
an open-source licence."""
