"""Rules of the gateway sections: tenants and their budgets, model fallbacks, certificates and DNS.

Kept apart from `rules.py` (the cluster and model rules) so the two families grow without touching each other;
`rules.check` runs both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from .errors import Problem
from .models import PlatformSpec

TenancyRule = Callable[[PlatformSpec], Iterable[Problem]]

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
    """A fallback names something, a model that exists and runs wherever the model does, a version that answers
    users, never the model itself as a whole, and no chain of fallbacks comes back to where it started."""
    edges: dict[str, str] = {}
    for name, model in spec.models.items():
        fallback = model.fallback
        if fallback is None:
            continue
        path = f"models.{name}.fallback"
        if not fallback.other_clusters and fallback.model is None:
            yield Problem(path, "the fallback names neither other clusters nor a model", "otherClusters=false",
                          "set otherClusters: true, name a fallback model, or remove fallback")
            continue
        if fallback.model is None:
            if fallback.version is not None:
                yield Problem(f"{path}.version", "a fallback version needs a fallback model", fallback.version,
                              f"add fallback.model (e.g. {name} to pin one of its own versions)")
            continue
        target = spec.models.get(fallback.model)
        if target is None:
            yield Problem(f"{path}.model", f"model '{fallback.model}' does not exist", fallback.model,
                          f"use one of: {', '.join(sorted(m for m in spec.models if m != name)) or '(no other model)'}")
            continue
        if fallback.model == name and fallback.version is None:
            yield Problem(f"{path}.model", f"model '{name}' falls back to itself", name,
                          "name another model, or pin one of its versions with fallback.version")
            continue
        if fallback.version is not None:
            deployed = {v.version: v for v in target.versions}
            version = deployed.get(fallback.version)
            if version is None:
                yield Problem(f"{path}.version", f"version {fallback.version} of '{fallback.model}' is not deployed",
                              fallback.version, f"use one of: {', '.join(deployed)}")
            elif version.role == "shadow":
                yield Problem(f"{path}.version", f"version {fallback.version} of '{fallback.model}' is a shadow, "
                              "which never answers users", fallback.version, "pin a stable, canary or ab version")
        served = {c.name for c in spec.clusters_of(target)}
        for cluster in spec.clusters_of(model):
            if cluster.name not in served:
                yield Problem(f"{path}.model", f"'{fallback.model}' is not deployed in cluster '{cluster.name}', where "
                              f"'{name}' runs", fallback.model,
                              f"deploy {fallback.model} there (models.{fallback.model}.clusters) or name a model "
                              "that runs in every cluster of this one")
        if fallback.model != name:
            edges[name] = fallback.model
    yield from _cycles(edges)


def _cycles(edges: dict[str, str]) -> Iterable[Problem]:
    """Each cycle of model -> fallback model edges, once, reported at its alphabetically first model."""
    reported: set[frozenset[str]] = set()
    for start in sorted(edges):
        chain = [start]
        while chain[-1] in edges and edges[chain[-1]] not in chain:
            chain.append(edges[chain[-1]])
        if chain[-1] not in edges or edges[chain[-1]] != start:
            continue
        members = frozenset(chain)
        if members in reported:
            continue
        reported.add(members)
        shown = " -> ".join([*chain, start])
        yield Problem(f"models.{start}.fallback.model", f"fallbacks form a cycle: {shown}", shown,
                      "end the chain at a model without a fallback")


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


TENANCY_RULES: tuple[TenancyRule, ...] = (tenants, fallbacks, gateway)
