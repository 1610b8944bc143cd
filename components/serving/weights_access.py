"""Weights access: the vLLM service accounts may read exactly their catalog's archives, with the cloud's workload
identity (EKS Pod Identity for s3://, GKE Workload Identity for gs://) and no static credentials."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp
from llmplane.components.aws_trust import POD_IDENTITY, trust_policy
from llmplane.components.options import children_of


@dataclass(frozen=True)
class WeightsAccessArgs:
    """The cluster, the service accounts that fetch weights, and the objects they may read."""

    cluster_name: pulumi.Input[str]
    """EKS cluster name."""
    namespace: str
    """Namespace of the vLLM service accounts."""
    service_accounts: list[str]
    """One per deployed model version."""
    object_arns: list[str]
    """`arn:aws:s3:::bucket/key` of every weights archive they may fetch (`.../prefix/*` for a streamed folder)."""
    tags: dict[str, str]
    """Tags for the IAM role and associations."""
    list_prefixes: list[tuple[str, str]] = field(default_factory=list)
    """(bucket, prefix) of every streamed folder: the streamer lists the folder's safetensors files."""


def s3_object_arn(uri: str) -> str | None:
    """The object ARN of an s3:// URI (a folder, ending in `/`, gives every object under it), or None for other
    schemes."""
    if not uri.startswith("s3://"):
        return None
    return f"arn:aws:s3:::{uri[len('s3://'):]}" + ("*" if uri.endswith("/") else "")


def s3_folder(uri: str) -> tuple[str, str] | None:
    """(bucket, prefix) of an s3:// folder URI (ending in `/`), which the model streamer lists; else None."""
    if not (uri.startswith("s3://") and uri.endswith("/")):
        return None
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix


class WeightsAccess(pulumi.ComponentResource):
    """An IAM role allowed `s3:GetObject` on exactly the catalog's archives, associated with each service account."""

    role_arn: pulumi.Output[str]
    """The role the vLLM pods assume."""

    def __init__(self, name: str, args: WeightsAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:WeightsAccess", name, None, opts)
        child = children_of(self, opts)
        role = aws.iam.Role(f"{name}-role", assume_role_policy=trust_policy(POD_IDENTITY), tags=args.tags, opts=child)
        listing = [{"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}",
                    "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}}
                   for bucket, prefix in sorted(set(args.list_prefixes))]
        aws.iam.RolePolicy(f"{name}-read-weights", role=role.id, policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": sorted(args.object_arns)},
                          *listing],
        }), opts=child)
        for account in args.service_accounts:
            aws.eks.PodIdentityAssociation(f"{name}-{account}", cluster_name=args.cluster_name,
                                           namespace=args.namespace, service_account=account, role_arn=role.arn,
                                           tags=args.tags, opts=child)
        self.role_arn = role.arn
        self.register_outputs({"role_arn": self.role_arn})


@dataclass(frozen=True)
class GcpWeightsAccessArgs:
    """The project, the service accounts that fetch weights, and the buckets holding their gs:// archives."""

    project: str
    """GCP project of the cluster (its Workload Identity pool is `<project>.svc.id.goog`)."""
    cluster: str
    """Cluster name (names the Google service account)."""
    namespace: str
    """Namespace of the vLLM service accounts."""
    service_accounts: list[str]
    """One per deployed model version."""
    buckets: list[str]
    """Buckets of the gs:// archives they may read."""


def gs_bucket(uri: str) -> str | None:
    """The bucket of a gs:// URI, or None for other schemes."""
    return uri[len("gs://"):].split("/", 1)[0] if uri.startswith("gs://") else None


class GcpWeightsAccess(pulumi.ComponentResource):
    """A Google service account that may read the weights buckets, impersonated by the vLLM service accounts
    through Workload Identity (they carry its email as `iam.gke.io/gcp-service-account`)."""

    email: pulumi.Output[str]
    """The Google service account's email, for the Kubernetes service accounts' annotation."""

    def __init__(self, name: str, args: GcpWeightsAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:GcpWeightsAccess", name, None, opts)
        child = children_of(self, opts)
        account = gcp.serviceaccount.Account(f"{name}-gsa", account_id=f"{args.cluster}-vllm"[:30],
                                             display_name=f"vLLM weights reader in {args.cluster}", opts=child)
        member = pulumi.Output.concat("serviceAccount:", account.email)
        for bucket in args.buckets:
            gcp.storage.BucketIAMMember(f"{name}-{bucket}", bucket=bucket, role="roles/storage.objectViewer",
                                        member=member, opts=child)
        for ksa in args.service_accounts:
            gcp.serviceaccount.IAMMember(
                f"{name}-{ksa}", service_account_id=account.name, role="roles/iam.workloadIdentityUser",
                member=f"serviceAccount:{args.project}.svc.id.goog[{args.namespace}/{ksa}]", opts=child)
        self.email = account.email
        self.register_outputs({"email": self.email})
