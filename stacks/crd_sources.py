"""Custom resource definitions at pinned versions, read from the projects' own Go modules.

Every CustomResource the stack creates (Gateway API Gateways and HTTPRoutes,
KEDA ScaledObjects, the HTTP add-on's InterceptorRoutes, Prometheus Operator ServiceMonitors and
PrometheusRules)
needs its CRD in the cluster first. Where no Helm chart installs them (an
on-prem or embedded cluster; the Gateway API on EKS) the stack installs them
itself, from the same release the projects publish: their Go module, fetched
through the Go module proxy into the module cache on first use.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from llmplane.components.autoscaling.scale_from_zero import KEDA_HTTP_ADDON as KEDA_HTTP_ADDON_CHART
from llmplane.components.gateway.charts import CERT_MANAGER as CERT_MANAGER_CHART
from llmplane.components.gateway.charts import ENVOY_GATEWAY as ENVOY_GATEWAY_CHART
from llmplane.stacks.yaml_loader import SAFE_LOADER


class CrdSourceError(RuntimeError):
    """A CRD module could not be fetched; the message says how to fix it."""


@dataclass(frozen=True)
class CrdSource:
    """Files of one project's CRDs inside its Go module at a pinned version."""

    project: str
    module: str
    version: str
    files: tuple[str, ...]
    go_toolchain: str | None = None
    """A newer Go the module's go.mod demands; the go command fetches it from the module proxy."""


GATEWAY_API = CrdSource(
    "gateway-api", "sigs.k8s.io/gateway-api", "v1.7.0",
    tuple(f"config/crd/standard/gateway.networking.k8s.io_{kind}.yaml"
          for kind in ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants",
                       "backendtlspolicies", "listenersets", "tlsroutes")),
    go_toolchain="go1.27.3",
)
KEDA = CrdSource(
    "keda", "github.com/kedacore/keda/v2", "v2.21.0",
    (*(f"config/crd/bases/keda.sh_{kind}.yaml"
       for kind in ("scaledobjects", "scaledjobs", "triggerauthentications", "clustertriggerauthentications")),
     # The operator watches these too and retries every few seconds without them.
     *(f"config/crd/bases/eventing.keda.sh_{kind}.yaml" for kind in ("cloudeventsources", "clustercloudeventsources"))),
)
PROMETHEUS_OPERATOR = CrdSource(
    "prometheus-operator", "github.com/prometheus-operator/prometheus-operator", "v0.85.0",
    tuple(f"example/prometheus-operator-crd/monitoring.coreos.com_{kind}.yaml"
          for kind in ("servicemonitors", "podmonitors", "prometheusrules")),
)
INFERENCE_EXTENSION = CrdSource(
    "gateway-api-inference-extension", "sigs.k8s.io/gateway-api-inference-extension", "v1.6.2",
    ("config/crd/bases/inference.networking.k8s.io_inferencepools.yaml",),
)
"""InferencePool v1 (group inference.networking.k8s.io): one pool per model version, routed to by HTTPRoutes."""
KEDA_HTTP_ADDON = CrdSource(
    "keda-http-add-on", "github.com/kedacore/http-add-on", f"v{KEDA_HTTP_ADDON_CHART.version}",
    tuple(f"config/crd/bases/http.keda.sh_{kind}.yaml" for kind in ("interceptorroutes", "httpscaledobjects")),
)
"""The HTTP add-on's InterceptorRoute (and HTTPScaledObject, which its operator watches), at the version of the
chart clouds install: one pin for both."""
ENVOY_GATEWAY = CrdSource(
    "envoy-gateway", "github.com/envoyproxy/gateway", ENVOY_GATEWAY_CHART.version,
    tuple(f"charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_{kind}.yaml"
          for kind in ("backends", "backendtrafficpolicies", "clienttrafficpolicies", "envoyextensionpolicies",
                       "envoypatchpolicies", "envoyproxies", "httproutefilters", "securitypolicies")),
)
"""Envoy Gateway's own CRDs, as its chart (the same version) installs them in the clouds: the tests admit the
gateway's objects against them."""
CERT_MANAGER = CrdSource(
    "cert-manager", "github.com/cert-manager/cert-manager", CERT_MANAGER_CHART.version,
    (*(f"deploy/crds/cert-manager.io_{kind}.yaml"
       for kind in ("certificaterequests", "certificates", "clusterissuers", "issuers")),
     *(f"deploy/crds/acme.cert-manager.io_{kind}.yaml" for kind in ("challenges", "orders"))),
)
"""cert-manager's CRDs as its source tree keeps them, plain YAML with the same specs as the chart's templates
(deploy/charts/cert-manager/templates/crd-*.yaml add only Helm labels and the `crds.keep` annotation). Not installed
by the stack, whose clusters get them from the chart (`crds.enabled`); the tests run cert-manager's controllers on
them."""
SOURCES = (GATEWAY_API, KEDA, PROMETHEUS_OPERATOR, INFERENCE_EXTENSION, KEDA_HTTP_ADDON, ENVOY_GATEWAY)


def _module_dir(source: CrdSource) -> Path:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise CrdSourceError(f"the {source.project} CRDs come from the Go module {source.module}@{source.version}, "
                             "and Go is not installed; install Go >= 1.26 and run again")
    env = dict(os.environ)
    if source.go_toolchain:
        env["GOTOOLCHAIN"] = source.go_toolchain
    done = subprocess.run([go, "mod", "download", "-json", f"{source.module}@{source.version}"],
                          capture_output=True, text=True, env=env, check=False, timeout=600)
    try:
        info = json.loads(done.stdout)
    except ValueError:
        info = {}
    if done.returncode != 0 or "Dir" not in info:
        reason = info.get("Error") or done.stderr.strip() or f"exit {done.returncode}"
        raise CrdSourceError(f"could not fetch {source.module}@{source.version} for its CRDs: {reason}")
    return Path(info["Dir"])


@functools.cache
def crd_documents(source: CrdSource) -> tuple[dict, ...]:
    """The CustomResourceDefinition objects of one source, parsed."""
    folder = _module_dir(source)
    documents = []
    for name in source.files:
        for document in yaml.load_all((folder / name).read_text(), Loader=SAFE_LOADER):
            if document and document.get("kind") == "CustomResourceDefinition":
                documents.append(document)
    return tuple(documents)
