"""WeightsAccess: on EKS, the vLLM service accounts may read their catalog's s3:// weights (Pod Identity)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


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
    """`arn:aws:s3:::bucket/key` of every weights archive they may fetch."""
    tags: dict[str, str]
    """Tags for the IAM role and associations."""


def s3_object_arn(uri: str) -> str | None:
    """The object ARN of an s3:// URI, or None for other schemes."""
    return f"arn:aws:s3:::{uri[len('s3://'):]}" if uri.startswith("s3://") else None


class WeightsAccess(pulumi.ComponentResource):
    """An IAM role allowed `s3:GetObject` on exactly the catalog's archives, associated with each service account."""

    role_arn: pulumi.Output[str]
    """The role the vLLM pods assume."""

    def __init__(self, name: str, args: WeightsAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:WeightsAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(f"{name}-role", assume_role_policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
                "Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]}),
            tags=args.tags, opts=child)
        aws.iam.RolePolicy(f"{name}-read-weights", role=role.id, policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": sorted(args.object_arns)}],
        }), opts=child)
        for account in args.service_accounts:
            aws.eks.PodIdentityAssociation(f"{name}-{account}", cluster_name=args.cluster_name,
                                           namespace=args.namespace, service_account=account, role_arn=role.arn,
                                           tags=args.tags, opts=child)
        self.role_arn = role.arn
        self.register_outputs({"role_arn": self.role_arn})
