"""DNS write access for cert-manager and external-dns, scoped to the environment's zone, with no static keys: an IAM
role through EKS Pod Identity (Route 53), or a Google service account through Workload Identity (Cloud DNS).

Route 53 actions, resources and condition keys follow the Route 53 service authorization reference (actions
ChangeResourceRecordSets, ListResourceRecordSets on `hostedzone/<id>`; GetChange on `change/*`;
ListHostedZones(ByName) only on `*`; the `route53:ChangeResourceRecordSets{RecordTypes,NormalizedRecordNames}`
condition keys). Cloud DNS grants `roles/dns.admin` on one managed zone (zone-level IAM), plus `roles/dns.reader`
on the project, the narrowest role that lets a controller list zones to find its own (listing is project-wide).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp
from llmplane.components.aws_trust import POD_IDENTITY, trust_policy
from llmplane.components.clusters.base import AwsNetwork, GcpNetwork

ACME_CHALLENGE_PREFIX = "_acme-challenge."
"""Name prefix of the TXT records DNS-01 challenges write (RFC 8555 section 8.4)."""


def zone_arn(zone_id: str) -> str:
    """ARN of a Route 53 hosted zone."""
    return f"arn:aws:route53:::hostedzone/{zone_id}"


def cert_manager_route53_policy(zone_id: str) -> str:
    """cert-manager's DNS-01 policy: TXT records named `_acme-challenge.*` in exactly this zone, and nothing else."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "route53:GetChange", "Resource": "arn:aws:route53:::change/*"},
        {"Effect": "Allow", "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
         "Resource": zone_arn(zone_id),
         "Condition": {"ForAllValues:StringEquals": {"route53:ChangeResourceRecordSetsRecordTypes": ["TXT"]},
                       "ForAllValues:StringLike": {"route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                           f"{ACME_CHALLENGE_PREFIX}*"]}}},
        {"Effect": "Allow", "Action": "route53:ListHostedZonesByName", "Resource": "*"},
    ]})


def external_dns_route53_policy(zone_id: str) -> str:
    """external-dns' policy: change and list records of exactly this zone; listing zones cannot be scoped."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets",
                                       "route53:ListTagsForResource"],
         "Resource": zone_arn(zone_id)},
        {"Effect": "Allow", "Action": ["route53:ListHostedZones", "route53:ListTagsForResources"], "Resource": "*"},
    ]})


@dataclass(frozen=True)
class DnsWriter:
    """A Kubernetes service account that must write DNS records."""

    namespace: str
    """Namespace of the service account."""
    service_account: str
    """Its name."""
    tags: dict[str, str]
    """Tags for the cloud identity resources."""


def grant_route53(child: pulumi.ResourceOptions, name: str, network: AwsNetwork, writer: DnsWriter,
                  policy: pulumi.Input[str]) -> pulumi.Output[str]:
    """An IAM role with `policy`, handed to the writer's service account through Pod Identity; its ARN. `child`:
    the calling component's options for its children (`children_of`)."""
    on_aws = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(provider=network.provider))
    role = aws.iam.Role(f"{name}-dns", assume_role_policy=trust_policy(POD_IDENTITY), tags=writer.tags, opts=on_aws)
    aws.iam.RolePolicy(f"{name}-dns", role=role.id, policy=policy, opts=on_aws)
    aws.eks.PodIdentityAssociation(f"{name}-dns", cluster_name=network.eks_cluster_name, namespace=writer.namespace,
                                   service_account=writer.service_account, role_arn=role.arn, tags=writer.tags,
                                   opts=on_aws)
    return role.arn


def grant_cloud_dns(child: pulumi.ResourceOptions, name: str, network: GcpNetwork, writer: DnsWriter,
                    managed_zone: str, account_id: str) -> pulumi.Output[str]:
    """A Google service account that administers one Cloud DNS managed zone (and may list the project's zones),
    impersonated by the writer's service account; its email (the `iam.gke.io/gcp-service-account` annotation).
    `child`: the calling component's options for its children (`children_of`)."""
    if network.project is None:
        raise ValueError(f"{name}: the GCP cluster's network has no project, which Workload Identity needs; set "
                         "ClusterArgs.gcp_project")
    account = gcp.serviceaccount.Account(f"{name}-dns", account_id=account_id[:30],
                                         display_name=f"DNS writer {writer.namespace}/{writer.service_account}",
                                         project=network.project, opts=child)
    member = pulumi.Output.concat("serviceAccount:", account.email)
    gcp.dns.DnsManagedZoneIamMember(f"{name}-dns-zone", project=network.project, managed_zone=managed_zone,
                                    role="roles/dns.admin", member=member, opts=child)
    gcp.projects.IAMMember(f"{name}-dns-list", project=network.project, role="roles/dns.reader", member=member,
                           opts=child)
    gcp.serviceaccount.IAMMember(
        f"{name}-dns-wi", service_account_id=account.name, role="roles/iam.workloadIdentityUser",
        member=f"serviceAccount:{network.project}.svc.id.goog[{writer.namespace}/{writer.service_account}]",
        opts=child)
    return account.email
