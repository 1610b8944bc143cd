"""ExternalDnsInstall: external-dns keeps each cluster's regional hostname pointing at its gateway's load balancer,
from the hostnames of the HTTPRoutes attached to it, writing only into the environment's zone.

The zone filter is written as a regular expression (the zone and every name in it) with one exclusion, the global
hostname: that name belongs to GlobalRouting's latency and failover records, and a plain `domainFilters` exclusion
cannot spare it without sparing every regional name under it too (external-dns `endpoint/domain_filter.go`
treats an excluded domain as a suffix; `--regex-domain-filter` overrides `--domain-filter`; v0.23.0). `upsert-only`
never deletes a record, and the TXT registry owned by the cluster's name keeps clusters off each other's records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from llmplane.components.clusters.base import AwsNetwork, ClusterNetwork, GcpNetwork, cloud_of
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import api_server, credentials, https_anywhere, namespace_baseline, policy
from llmplane.components.options import children_of

from .charts import EXTERNAL_DNS
from .dns_access import DnsWriter, external_dns_route53_policy, grant_cloud_dns, grant_route53

NAMESPACE = "external-dns"
SERVICE_ACCOUNT = "external-dns"
PODS = {"app.kubernetes.io/name": "external-dns"}
"""Labels of external-dns' pods (charts/external-dns/templates/_helpers.tpl `external-dns.selectorLabels`: the
chart's name, which `fullnameOverride` leaves alone)."""


def zone_filters(zone: str, global_hostname: str) -> list[str]:
    """external-dns arguments limiting it to `zone` and its names, the global hostname excepted."""
    if global_hostname != zone and not global_hostname.endswith(f".{zone}"):
        raise ValueError(f"ExternalDnsArgs.global_hostname: {global_hostname} is not in the zone {zone}; use the "
                         "zone that holds it")
    return [f"--regex-domain-filter=(^|\\.){re.escape(zone)}$",
            f"--regex-domain-exclusion=^{re.escape(global_hostname)}$"]


@dataclass(frozen=True)
class ExternalDnsArgs:
    """The cluster, its cloud's DNS and the zone it may write."""

    cluster_name: str
    """Cluster name: the TXT registry's owner id, so clusters never take over each other's records."""
    network: ClusterNetwork | None
    """Route 53 through Pod Identity (AwsNetwork) or Cloud DNS through Workload Identity (GcpNetwork)."""
    dns_zone: str
    """The zone records go to (`gateway.dnsZone`, else `routing.hostedZone`)."""
    global_hostname: str
    """The global hostname (`routing.hostname`), left to GlobalRouting."""
    gcp_managed_zone: str | None = None
    """GCP: the Cloud DNS managed zone (its resource name) that serves `dns_zone`."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for the cloud identity."""

    def __post_init__(self) -> None:
        if self.network is None:
            raise ValueError(f"ExternalDnsArgs.network: cluster '{self.cluster_name}' has no cloud DNS; publish an "
                             "on-prem cluster's regional hostname in the zone by hand, or leave external-dns out there")
        if isinstance(self.network, GcpNetwork) and self.gcp_managed_zone is None:
            raise ValueError(f"ExternalDnsArgs.gcp_managed_zone: cluster '{self.cluster_name}' writes to Cloud DNS; "
                             f"name the managed zone that serves {self.dns_zone}")
        zone_filters(self.dns_zone, self.global_hostname)


class ExternalDnsInstall(pulumi.ComponentResource):
    """external-dns' chart watching Gateway API HTTPRoutes, and its identity scoped to the zone."""

    namespace: pulumi.Output[str]
    """external-dns' namespace."""

    def __init__(self, name: str, args: ExternalDnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:ExternalDnsInstall", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="external-dns", instance=NAMESPACE, component="dns", version=EXTERNAL_DNS.version)
        ns = k8s.core.v1.Namespace(f"{name}-namespace", metadata={"name": NAMESPACE, "labels": labels}, opts=child)
        # Default deny; external-dns watches the API and writes to the cloud's DNS API (443) with its identity.
        namespace_baseline(f"{name}-netpol", ns.metadata.name, labels, child)
        policy(f"{name}-netpol-external-dns", ns.metadata.name, "external-dns", labels, PODS, child,
               egress=[api_server(), https_anywhere(), *credentials(cloud_of(args.network))])
        writer = DnsWriter(NAMESPACE, SERVICE_ACCOUNT, dict(args.tags))
        extra_args: list[pulumi.Input[str]] = zone_filters(args.dns_zone, args.global_hostname)
        annotations: dict[str, pulumi.Input[str]] = {}
        network = args.network
        if isinstance(network, AwsNetwork):
            zone = aws.route53.get_zone_output(name=args.dns_zone, private_zone=False,
                                               opts=pulumi.InvokeOptions(parent=self, provider=network.provider))
            grant_route53(child, name, network, writer, zone.zone_id.apply(external_dns_route53_policy))
            provider = "aws"
            extra_args += [pulumi.Output.concat("--zone-id-filter=", zone.zone_id), "--aws-zone-type=public"]
        else:
            assert isinstance(network, GcpNetwork)
            annotations["iam.gke.io/gcp-service-account"] = grant_cloud_dns(
                child, name, network, writer, str(args.gcp_managed_zone), f"{args.cluster_name}-dns")
            provider = "google"
            extra_args += [f"--google-project={network.project}", "--google-zone-visibility=public"]
        EXTERNAL_DNS.release(f"{name}-external-dns", ns.metadata.name, {
            "fullnameOverride": "external-dns",
            "provider": {"name": provider},
            "sources": ["gateway-httproute"],
            "policy": "upsert-only",
            "registry": "txt",
            "txtOwnerId": args.cluster_name,
            "extraArgs": extra_args,
            "serviceAccount": {"name": SERVICE_ACCOUNT, "annotations": annotations},
            "logFormat": "json",
        }, child)
        self.namespace = ns.metadata.name
        self.register_outputs({"namespace": self.namespace})
