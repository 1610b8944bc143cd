"""Rules of the gateway sections: tenants and their budgets, (no) model fallbacks, certificates and DNS.

Kept apart from `rules.py` (the cluster and model rules) so the two families grow without touching each other;
`rules.check` runs both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from llmplane.facts.images import ENVOY_GATEWAY_VERSION

from .errors import Problem
from .models import PlatformSpec

TenancyRule = Callable[[PlatformSpec], Iterable[Problem]]

LAST_GATEWAY_MINOR = 35
"""The newest Kubernetes minor whose API server admits Envoy Gateway v1.8.1's BackendTrafficPolicy CRD."""
RESERVED_SECRET_KEYS = ("vllmApiKey", "storageCredentials")
"""Keys of `llmplane:secrets` that hold the platform's own secrets, never a tenant's API key."""


def _twice(names: Iterable[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


def tenants(spec: PlatformSpec) -> Iterable[Problem]:
    """Tenants are unique, call models that exist, have a token budget whose day covers its minute, and own their
    API keys alone."""
    for dup in _twice(t.name for t in spec.tenants):
        yield Problem("tenants", f"tenant name '{dup}' is used twice", dup, "give every tenant its own name")
    known = sorted(spec.models)
    platform_keys = {*RESERVED_SECRET_KEYS, *(c.kubeconfig_secret for c in spec.clusters if c.kubeconfig_secret)}
    owners: dict[str, str] = {}
    for tenant in spec.tenants:
        path = f"tenants.{tenant.name}"
        for missing in [m for m in tenant.models if m not in spec.models]:
            yield Problem(f"{path}.models", f"model '{missing}' does not exist", missing,
                          f"use one of: {', '.join(known)}")
        for dup in _twice(tenant.models):
            yield Problem(f"{path}.models", f"model '{dup}' is listed twice", dup, "list each model once")
        minute, day = tenant.tokens_per_minute, tenant.tokens_per_day
        if minute is None and day is None:
            yield Problem(path, f"tenant '{tenant.name}' has no token budget", "(none)",
                          "add tokensPerMinute, tokensPerDay or both")
        elif minute is not None and day is not None and day < minute:
            yield Problem(f"{path}.tokensPerDay", f"{day} tokens per day is less than the {minute} tokens per minute",
                          f"tokensPerDay={day}, tokensPerMinute={minute}",
                          "raise tokensPerDay to at least tokensPerMinute, or lower tokensPerMinute")
        for key in tenant.api_key_secrets:
            if key in platform_keys:
                yield Problem(f"{path}.apiKeySecrets", f"'{key}' holds a platform secret, not a tenant's API key", key,
                              f"store the tenant's key under its own name, e.g. {tenant.name.replace('-', '')}ApiKey")
            elif key in owners:
                same = owners[key] == tenant.name
                yield Problem(f"{path}.apiKeySecrets", f"'{key}' is listed twice" if same else
                              f"'{key}' is already an API key of tenant '{owners[key]}'", key,
                              "list each key once" if same else "give every tenant keys of its own")
            else:
                owners[key] = tenant.name


def fallbacks(spec: PlatformSpec) -> Iterable[Problem]:
    """No model asks the gateway to fail over: the pinned gateway cannot. Envoy Gateway fails over through
    `fallback` Backends, Envoy priority levels inside one cluster, and Envoy AI Gateway makes an InferencePool
    rule's cluster ORIGINAL_DST, which has no priority levels (docs/gateway.md); stand-by Backends in the serving
    rule would instead take a weight-1 share of every request. Whole clusters fail over by DNS."""
    for name, model in spec.models.items():
        if model.fallback is not None:
            yield Problem(f"models.{name}.fallback", "the gateway cannot fail a model over to other clusters or "
                          "another model (Envoy AI Gateway v1.1.0 gives InferencePool rules no priority levels; "
                          "see docs/gateway.md)", "fallback",
                          "remove fallback: whole clusters fail over by DNS in routing.failoverOrder")


def gateway(spec: PlatformSpec) -> Iterable[Problem]:
    """ACME DNS-01 issuers have a cloud DNS zone that holds the hostname and a contact address; on-prem clusters,
    with no cloud DNS, use the private CA; GKE clusters with a zone (external-dns, ACME) name its managed zone."""
    settings = spec.gateway
    clouds = {c.cloud for c in spec.clusters}
    acme = sorted(cloud for cloud in clouds if settings.tls_issuer.get(cloud) == "acme-dns01")
    zone = settings.dns_zone or spec.routing.hosted_zone
    for cloud in sorted(clouds - set(settings.tls_issuer)):
        yield Problem("gateway.tlsIssuer", f"no issuer for the {cloud} clusters",
                      ", ".join(f"{c}={i}" for c, i in settings.tls_issuer.items()) or "(none)",
                      f"add {cloud}: {'private-ca' if cloud == 'onprem' else 'acme-dns01'}")
    if "onprem" in acme:
        yield Problem("gateway.tlsIssuer.onprem", "an on-prem cluster has no cloud DNS to answer ACME DNS-01",
                      "acme-dns01", "use private-ca for onprem")
    cloud_acme = [cloud for cloud in acme if cloud != "onprem"]
    if cloud_acme and zone is None:
        yield Problem("gateway.dnsZone", f"ACME DNS-01 for the {' and '.join(cloud_acme)} clusters needs a DNS zone",
                      "(none)", "set gateway.dnsZone or routing.hostedZone, or use private-ca")
    if "gcp" in clouds and zone is not None and settings.gcp_managed_zone is None:
        yield Problem("gateway.gcpManagedZone", f"the gcp clusters write {zone} through Cloud DNS, which names the "
                      "zone by its managed zone", "(none)", f"set gateway.gcpManagedZone to the managed zone of {zone}")
    if cloud_acme and settings.acme_email is None:
        yield Problem("gateway.acmeEmail", "ACME DNS-01 needs a contact address", "(none)",
                      "set gateway.acmeEmail to the team's address")
    hostname = spec.routing.hostname
    if zone is not None and hostname != zone and not hostname.endswith(f".{zone}"):
        yield Problem("gateway.dnsZone" if settings.dns_zone else "routing.hostedZone",
                      f"the hostname {hostname} is not in the zone {zone}", zone,
                      f"use the zone that holds {hostname}, e.g. {hostname.partition('.')[2] or hostname}")


def gateway_kubernetes(spec: PlatformSpec) -> Iterable[Problem]:
    """A cluster that installs the gateway runs a Kubernetes that admits its CRDs: Envoy Gateway v1.8.1 declares
    BackendTrafficPolicy's `limit.requests` int32 with a uint32 bound, which Kubernetes 1.36 and later refuse, so
    no token budget could be created there (envoyproxy/gateway issue 9186; v1.9 declares int64, but Envoy AI
    Gateway v1.1.0 names only v1.8.1; docs/gateway.md)."""
    for cluster in spec.clusters:
        minor = int(cluster.kubernetes_version.split(".")[1])
        if cluster.addons == "helm" and minor >= LAST_GATEWAY_MINOR + 1:
            yield Problem(f"clusters.{cluster.name}.kubernetesVersion", f"Kubernetes {cluster.kubernetes_version} "
                          f"refuses the token-budget CRD of Envoy Gateway v{ENVOY_GATEWAY_VERSION}",
                          cluster.kubernetes_version, f"use 1.{LAST_GATEWAY_MINOR} or older until the gateway moves "
                          "to Envoy Gateway v1.9 with an Envoy AI Gateway release built on it")


TENANCY_RULES: tuple[TenancyRule, ...] = (tenants, fallbacks, gateway, gateway_kubernetes)
