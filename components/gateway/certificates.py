"""Certificates for the gateway: cert-manager with one ClusterIssuer per cluster — ACME DNS-01 through the cloud's
DNS (Route 53 or Cloud DNS) with an identity that may write only the challenge records of the zone, or a private CA
on-prem — and the Gateway's Certificate for its global and regional names in the Secret its listeners reference.

Field names follow cert-manager v1.21 (`cert-manager.io/v1` ClusterIssuer and Certificate; the ACME DNS-01 solvers
`route53` and `cloudDNS`; the chart's `crds.enabled`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from llmplane.components.clusters.base import AwsNetwork, ClusterNetwork, GcpNetwork, cloud_of
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import (
    ANYWHERE,
    api_server,
    cidr,
    credentials,
    from_api_server,
    https_anywhere,
    namespace_baseline,
    policy,
)
from llmplane.components.networking.regional_gateway import TLS_SECRET
from llmplane.components.options import children_of

from .charts import CERT_MANAGER
from .dns_access import DnsWriter, cert_manager_route53_policy, grant_cloud_dns, grant_route53

NAMESPACE = "cert-manager"
SERVICE_ACCOUNT = "cert-manager"
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
"""Let's Encrypt's production ACME directory."""
ISSUERS = ("acme-dns01", "private-ca")
CM_API = "cert-manager.io/v1"
CONTROLLER_PODS = {"app.kubernetes.io/name": "cert-manager", "app.kubernetes.io/component": "controller"}
WEBHOOK_PODS = {"app.kubernetes.io/name": "webhook", "app.kubernetes.io/component": "webhook"}
CAINJECTOR_PODS = {"app.kubernetes.io/name": "cainjector", "app.kubernetes.io/component": "cainjector"}
STARTUPAPICHECK_PODS = {"app.kubernetes.io/name": "startupapicheck", "app.kubernetes.io/component": "startupapicheck"}
"""Labels of cert-manager's pods (chart v1.21.2 deploy/charts/cert-manager/templates: deployment.yaml,
webhook-deployment.yaml, cainjector-deployment.yaml, startupapicheck-job.yaml)."""
WEBHOOK_PORT = 10250
"""The webhook's HTTPS port (chart value `webhook.securePort`), called by the API server."""


@dataclass(frozen=True)
class CertManagerArgs:
    """The cluster, its cloud's DNS and the issuer it uses (`gateway.tlsIssuer` of its cloud)."""

    cluster_name: str
    """Cluster name (names the cloud identity)."""
    issuer: str
    """acme-dns01 (cloud clusters) or private-ca."""
    network: ClusterNetwork | None = None
    """The cluster's cloud handles: Route 53 through Pod Identity (AwsNetwork), Cloud DNS through Workload
    Identity (GcpNetwork); None on-prem."""
    dns_zone: str | None = None
    """DNS zone the challenge records go to (`gateway.dnsZone`, else `routing.hostedZone`)."""
    acme_email: str | None = None
    """Contact address registered with the ACME CA (`gateway.acmeEmail`)."""
    gcp_managed_zone: str | None = None
    """GCP: the Cloud DNS managed zone (its resource name) that serves `dns_zone`."""
    aws_region: str = "us-east-1"
    """AWS: the region cert-manager's Route 53 client signs for (Route 53 itself is global)."""
    acme_server: str = LETS_ENCRYPT
    """ACME directory URL."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for the cloud identity."""

    def __post_init__(self) -> None:
        if self.issuer not in ISSUERS:
            raise ValueError(f"CertManagerArgs.issuer: '{self.issuer}' is not an issuer; use one of "
                             f"{', '.join(ISSUERS)}")
        if self.issuer != "acme-dns01":
            return
        if self.network is None:
            raise ValueError(f"CertManagerArgs.issuer: acme-dns01 in cluster '{self.cluster_name}', which has no "
                             "cloud DNS to answer the challenge; use private-ca on-prem")
        for name in ("dns_zone", "acme_email"):
            if getattr(self, name) is None:
                raise ValueError(f"CertManagerArgs.{name}: acme-dns01 in cluster '{self.cluster_name}' needs it; "
                                 f"set gateway.{'dnsZone' if name == 'dns_zone' else 'acmeEmail'}")
        if isinstance(self.network, GcpNetwork) and self.gcp_managed_zone is None:
            raise ValueError(f"CertManagerArgs.gcp_managed_zone: cluster '{self.cluster_name}' answers ACME through "
                             f"Cloud DNS; name the managed zone that serves {self.dns_zone}")


class CertManagerInstall(pulumi.ComponentResource):
    """cert-manager's chart (with its CRDs), the DNS identity its controller uses, and the cluster's issuer."""

    issuer_name: pulumi.Output[str]
    """Name of the ClusterIssuer that signs the gateway's certificate."""
    namespace: pulumi.Output[str]
    """cert-manager's namespace."""

    def __init__(self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:CertManagerInstall", name, None, opts)
        child = children_of(self, opts)
        labels = k8s_labels(name="cert-manager", instance=NAMESPACE, component="certificates",
                            version=CERT_MANAGER.version)
        ns = k8s.core.v1.Namespace(f"{name}-namespace", metadata={"name": NAMESPACE, "labels": labels}, opts=child)
        writer = DnsWriter(NAMESPACE, SERVICE_ACCOUNT, dict(args.tags))
        annotations: dict[str, pulumi.Input[str]] = {}
        solver: dict | None = None
        network = args.network
        if args.issuer == "acme-dns01" and isinstance(network, AwsNetwork):
            zone = aws.route53.get_zone_output(name=args.dns_zone, private_zone=False,
                                               opts=pulumi.InvokeOptions(parent=self, provider=network.provider))
            grant_route53(child, name, network, writer, zone.zone_id.apply(cert_manager_route53_policy))
            solver = {"route53": {"region": args.aws_region, "hostedZoneID": zone.zone_id}}
        elif args.issuer == "acme-dns01" and isinstance(network, GcpNetwork):
            email = grant_cloud_dns(child, name, network, writer, str(args.gcp_managed_zone),
                                    f"{args.cluster_name}-certs")
            annotations["iam.gke.io/gcp-service-account"] = email
            solver = {"cloudDNS": {"project": network.project, "hostedZoneName": args.gcp_managed_zone}}
        self._policies(name, ns.metadata.name, labels, cloud_of(network), child)
        release = CERT_MANAGER.release(f"{name}-cert-manager", ns.metadata.name, {
            "crds": {"enabled": True},
            "fullnameOverride": "cert-manager",
            "serviceAccount": {"name": SERVICE_ACCOUNT, "annotations": annotations},
            "prometheus": {"enabled": True, "servicemonitor": {"enabled": False}},
        }, child)
        after_chart = children_of(self, opts, depends_on=[release])  # the chart brings the CRDs
        if solver is not None:
            issuer = k8s.apiextensions.CustomResource(
                f"{name}-acme", api_version=CM_API, kind="ClusterIssuer",
                metadata={"name": "llmplane-acme", "labels": labels},
                spec={"acme": {
                    "server": args.acme_server,
                    "email": args.acme_email,
                    "privateKeySecretRef": {"name": "llmplane-acme-account"},
                    "solvers": [{"selector": {"dnsZones": [args.dns_zone]}, "dns01": solver}],
                }},
                opts=after_chart)
        else:
            issuer = self._private_ca(name, labels, opts, release)
        self.issuer_name = issuer.metadata.apply(lambda m: m["name"])
        self.namespace = ns.metadata.name
        self.register_outputs({"issuer_name": self.issuer_name, "namespace": self.namespace})

    def _policies(self, name: str, namespace: pulumi.Input[str], labels: dict[str, str], cloud: str,
                  child: pulumi.ResourceOptions) -> None:
        """cert-manager's namespace: default deny; every component watches the API; the API server calls the
        webhook; the controller reaches the ACME CA and the cloud's DNS API (443, addresses not fixed), its cloud
        identity, and, for the DNS-01 self-check, the zone's authoritative nameservers on port 53."""
        namespace_baseline(f"{name}-netpol", namespace, labels, child)
        dns_anywhere = {"peers": [cidr(ANYWHERE)], "ports": [{"port": 53, "protocol": "UDP"},
                                                              {"port": 53, "protocol": "TCP"}]}
        policy(f"{name}-netpol-controller", namespace, "cert-manager-controller", labels, CONTROLLER_PODS, child,
               egress=[api_server(), https_anywhere(), dns_anywhere, *credentials(cloud)])
        policy(f"{name}-netpol-webhook", namespace, "cert-manager-webhook", labels, WEBHOOK_PODS, child,
               ingress=[from_api_server(WEBHOOK_PORT)], egress=[api_server()])
        for suffix, pods in (("cainjector", CAINJECTOR_PODS), ("startupapicheck", STARTUPAPICHECK_PODS)):
            policy(f"{name}-netpol-{suffix}", namespace, f"cert-manager-{suffix}", labels, pods, child,
                   egress=[api_server()])

    def _private_ca(self, name: str, labels: dict[str, str], opts: pulumi.ResourceOptions | None,
                    release: pulumi.Resource) -> k8s.apiextensions.CustomResource:
        """A self-signed root ClusterIssuer, the CA certificate it signs (kept in cert-manager's namespace, where a
        ClusterIssuer reads its CA), and the CA ClusterIssuer that signs the gateway's certificates."""
        root = k8s.apiextensions.CustomResource(
            f"{name}-selfsigned", api_version=CM_API, kind="ClusterIssuer",
            metadata={"name": "llmplane-selfsigned", "labels": labels}, spec={"selfSigned": {}},
            opts=children_of(self, opts, depends_on=[release]))
        ca = k8s.apiextensions.CustomResource(
            f"{name}-root-ca", api_version=CM_API, kind="Certificate",
            metadata={"name": "llmplane-root-ca", "namespace": NAMESPACE, "labels": labels},
            spec={"isCA": True, "commonName": "llmplane private CA", "secretName": "llmplane-root-ca",
                  "duration": "87600h", "renewBefore": "720h",
                  "privateKey": {"algorithm": "ECDSA", "size": 256},
                  "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "llmplane-selfsigned"}},
            opts=children_of(self, opts, depends_on=[release, root]))
        return k8s.apiextensions.CustomResource(
            f"{name}-ca", api_version=CM_API, kind="ClusterIssuer",
            metadata={"name": "llmplane-ca", "labels": labels}, spec={"ca": {"secretName": "llmplane-root-ca"}},
            opts=children_of(self, opts, depends_on=[release, ca]))


@dataclass(frozen=True)
class GatewayCertificateArgs:
    """The names a Gateway answers for and who signs them."""

    issuer_name: pulumi.Input[str]
    """ClusterIssuer that signs (CertManagerInstall.issuer_name)."""
    hostnames: Sequence[str]
    """Global and regional hostnames of the Gateway's listeners."""
    namespace: pulumi.Input[str]
    """The Gateway's namespace (RegionalGateway.gateway_namespace)."""
    secret_name: str = TLS_SECRET
    """Secret the listeners reference."""

    def __post_init__(self) -> None:
        if not self.hostnames:
            raise ValueError("GatewayCertificateArgs.hostnames: empty; give the Gateway's global and regional "
                             "hostnames")


class GatewayCertificate(pulumi.ComponentResource):
    """The Gateway's Certificate: cert-manager keeps its key pair, renewed before expiry, in the listeners' Secret."""

    secret_name: pulumi.Output[str]
    """Secret holding the certificate and key."""

    def __init__(self, name: str, args: GatewayCertificateArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:gateway:GatewayCertificate", name, None, opts)
        certificate = k8s.apiextensions.CustomResource(
            f"{name}-certificate", api_version=CM_API, kind="Certificate",
            metadata={"name": "llmplane-gateway", "namespace": args.namespace,
                      "labels": k8s_labels(name="gateway", instance=args.secret_name, component="certificate")},
            spec={"secretName": args.secret_name, "dnsNames": list(args.hostnames),
                  "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                  "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": args.issuer_name}},
            opts=children_of(self, opts))
        self.secret_name = pulumi.Output.all(certificate.id, args.secret_name).apply(lambda v: v[1])
        self.register_outputs({"secret_name": self.secret_name})
