"""IAM trust policies: who may assume a role. Written once for the EKS cluster, its nodes, Karpenter, Loki and the
weights reader."""

from __future__ import annotations

import json

POD_IDENTITY = "pods.eks.amazonaws.com"
"""The EKS Pod Identity service: a role it may assume is handed to pods through a PodIdentityAssociation."""


def trust_policy(service: str) -> str:
    """A role that `service` may assume (and tag the session of, as Pod Identity requires)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                       "Action": ["sts:AssumeRole", "sts:TagSession"]}],
    })
