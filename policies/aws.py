"""AWS policies: private, encrypted, logged EKS; immutable scanned images; private buckets; tags."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterator, Sequence

from .base import (
    UNKNOWN,
    Context,
    Finding,
    ResourceView,
    Rule,
    as_dict,
    as_list,
    get,
    is_false,
    is_true,
    number,
)

EKS_CLUSTER = ("aws:eks/cluster:Cluster",)
REQUIRED_LOG_TYPES = ("api", "audit", "authenticator")
REQUIRED_TAGS = ("environment", "cost-center", "owner", "managed-by")


@functools.cache
def takes_input(token: str, *names: str) -> bool | None:
    """Whether the pulumi provider SDK's resource class for a type token takes one of these inputs.

    Looked up in the installed `pulumi_aws` / `pulumi_gcp` package; None when the class cannot be found.
    """
    package = {"aws": "pulumi_aws", "gcp": "pulumi_gcp"}.get(token.split(":")[0])
    parts = token.split(":")
    if package is None or len(parts) != 3:
        return None
    module_name, class_name = parts[1].split("/")[0], parts[2]
    for candidate in (module_name, f"{module_name}_"):
        try:
            module = importlib.import_module(package if candidate == "index" else f"{package}.{candidate}")
        except ImportError:
            continue
        cls = getattr(module, class_name, None)
        init = getattr(cls, "_internal_init", None)
        if init is not None:
            parameters = inspect.signature(init).parameters
            return any(name in parameters for name in names)
    return None


# ------------------------------------------------------------------ EKS


def eks_private_endpoint(view: ResourceView, context: Context) -> Iterator[str]:
    vpc = as_dict(view.props.get("vpcConfig"))
    private, public = vpc.get("endpointPrivateAccess"), vpc.get("endpointPublicAccess")
    if not is_true(private) and private != UNKNOWN:
        yield f"EKS cluster {view.name}: endpointPrivateAccess is not true; nodes reach the API over the internet"
    if context.is_prod and not is_false(public) and public != UNKNOWN:
        state = "defaults to true" if public is None else "is true"
        yield (f"EKS cluster {view.name}: endpointPublicAccess {state} in {context.environment or 'prod'}; "
               "the Kubernetes API must not be reachable from the internet")


def eks_secrets_encryption(view: ResourceView, _: Context) -> Iterator[str]:
    config = view.props.get("encryptionConfig")
    if config == UNKNOWN:
        return
    resources = as_list(get(config, "resources"))
    key = get(config, "provider", "keyArn")
    if "secrets" not in resources or not key:
        yield f"EKS cluster {view.name}: Kubernetes Secrets are not envelope-encrypted with a KMS key"


def eks_control_plane_logging(view: ResourceView, _: Context) -> Iterator[str]:
    types = view.props.get("enabledClusterLogTypes")
    if types == UNKNOWN:
        return
    missing = [t for t in REQUIRED_LOG_TYPES if t not in as_list(types)]
    if missing:
        yield f"EKS cluster {view.name}: control-plane logs off for {', '.join(missing)}"


# ------------------------------------------------------------------ ECR


def ecr_immutable_tags(view: ResourceView, _: Context) -> Iterator[str]:
    value = view.props.get("imageTagMutability")
    if value != "IMMUTABLE" and value != UNKNOWN:
        yield f"ECR repository {view.name}: imageTagMutability is {value or 'MUTABLE (the default)'}"


def ecr_scan_on_push(view: ResourceView, _: Context) -> Iterator[str]:
    value = get(view.props, "imageScanningConfiguration", "scanOnPush")
    if not is_true(value) and value != UNKNOWN:
        yield f"ECR repository {view.name}: images are not scanned on push"


# ------------------------------------------------------------------ S3 buckets

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
       "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
ACLS = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS = ("aws:kms", "aws:kms:dsse", "AES256")


def _of_bucket(setting: ResourceView, bucket: ResourceView) -> bool:
    """Whether a bucket setting resource (public access block, SSE, versioning) configures this bucket.

    By the engine's property dependencies where known (CrossGuard), else by the value of its `bucket` input:
    the bucket's id or its explicit name.
    """
    if bucket.urn in setting.dependencies.get("bucket", ()):
        return True
    value = setting.props.get("bucket")
    names = {*bucket.ids, bucket.props.get("bucket")} - {None, UNKNOWN}
    return isinstance(value, str) and value in names


def _buckets(resources: Sequence[ResourceView]) -> list[ResourceView]:
    return [r for r in resources if r.type in BUCKETS]


def _settings(resources: Sequence[ResourceView], bucket: ResourceView, types: tuple[str, ...]) -> list[ResourceView]:
    return [r for r in resources if r.type in types and _of_bucket(r, bucket)]


def s3_private(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    for bucket in _buckets(resources):
        acls = [bucket.props.get("acl")] + [r.props.get("acl") for r in _settings(resources, bucket, ACLS)]
        public = [acl for acl in acls if acl in PUBLIC_ACLS]
        if public:
            yield Finding(bucket.urn, f"S3 bucket {bucket.name}: canned ACL {public[0]} makes objects public")
        blocks = _settings(resources, bucket, (PUBLIC_ACCESS_BLOCK,))
        if not blocks:
            yield Finding(bucket.urn, f"S3 bucket {bucket.name}: no BucketPublicAccessBlock")
            continue
        props = blocks[0].props
        off = [flag for flag in BLOCK_FLAGS if not is_true(props.get(flag)) and props.get(flag) != UNKNOWN]
        if off:
            yield Finding(blocks[0].urn, f"S3 bucket {bucket.name}: public access block leaves {', '.join(off)} off")


def _inline_sse(bucket: ResourceView) -> list[object]:
    """Algorithms of a bucket's own (deprecated, inline) encryption settings."""
    inline = [bucket.props.get("serverSideEncryptionConfiguration"),
              *as_list(bucket.props.get("serverSideEncryptionConfigurations"))]
    algorithms = []
    for config in inline:
        for rule in [get(config, "rule"), *as_list(get(config, "rules"))]:
            algorithms.append(get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm"))
    return algorithms


def s3_encrypted(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    for bucket in _buckets(resources):
        algorithms = _inline_sse(bucket)
        for setting in _settings(resources, bucket, SSE):
            algorithms += [get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
                           for rule in as_list(setting.props.get("rules"))]
        if not any(a in SSE_ALGORITHMS or a == UNKNOWN for a in algorithms):
            yield Finding(bucket.urn, f"S3 bucket {bucket.name}: no server-side encryption configuration "
                                      "(aws:kms or AES256)")


def s3_versioned(resources: Sequence[ResourceView], _: Context) -> Iterator[Finding]:
    for bucket in _buckets(resources):
        states = [get(bucket.props, "versioning", "enabled"),
                  *(get(v, "enabled") for v in as_list(bucket.props.get("versionings")))]
        enabled = any(is_true(s) for s in states)
        for setting in _settings(resources, bucket, VERSIONING):
            status = get(setting.props, "versioningConfiguration", "status")
            enabled = enabled or status in ("Enabled", UNKNOWN)
        if not enabled:
            yield Finding(bucket.urn, f"S3 bucket {bucket.name}: versioning is not enabled, so an overwritten "
                                      "or deleted object (weights, logs) cannot be recovered")


# ------------------------------------------------------------------ logs, tags, keys


def log_retention(view: ResourceView, _: Context) -> Iterator[str]:
    days = view.props.get("retentionInDays")
    if days == UNKNOWN:
        return
    if not number(days):
        yield f"CloudWatch log group {view.name}: no retentionInDays, logs are kept (and billed) forever"


def required_tags(view: ResourceView, _: Context) -> Iterator[str]:
    tags = view.props.get("tags")
    if tags == UNKNOWN:
        return
    if tags is None and not takes_input(view.type, "tags"):
        return
    tags = as_dict(tags)
    missing = [key for key in REQUIRED_TAGS if not tags.get(key)]
    if missing:
        yield f"{view.type.split(':')[-1]} {view.name}: missing tags {', '.join(missing)}"


def kms_rotation(view: ResourceView, _: Context) -> Iterator[str]:
    spec = view.props.get("customerMasterKeySpec") or view.props.get("keySpec") or "SYMMETRIC_DEFAULT"
    if spec != "SYMMETRIC_DEFAULT":
        return  # AWS rotates only symmetric keys
    value = view.props.get("enableKeyRotation")
    if not is_true(value) and value != UNKNOWN:
        yield f"KMS key {view.name}: automatic key rotation is off"


RULES = [
    Rule(
        name="aws-eks-private-endpoint",
        description="EKS clusters have private API endpoint access; in prod the public endpoint is off.",
        remediation="Set vpcConfig.endpointPrivateAccess: true, and in prod endpointPublicAccess: false "
        "(llmplane does so when the environment sets `protect: true`); reach the API over VPN or a bastion.",
        resource_types=EKS_CLUSTER,
        check=eks_private_endpoint,
        uses_environment=True,
    ),
    Rule(
        name="aws-eks-secrets-encryption",
        description="EKS envelope-encrypts Kubernetes Secrets with a customer-managed KMS key.",
        remediation="Set encryptionConfig: {resources: [secrets], provider: {keyArn: <KMS key with rotation>}}.",
        resource_types=EKS_CLUSTER,
        check=eks_secrets_encryption,
    ),
    Rule(
        name="aws-eks-control-plane-logging",
        description="EKS sends at least the api, audit and authenticator control-plane logs to CloudWatch.",
        remediation="Set enabledClusterLogTypes to include api, audit and authenticator (and create the "
        "/aws/eks/<cluster>/cluster log group with a retention first).",
        resource_types=EKS_CLUSTER,
        check=eks_control_plane_logging,
    ),
    Rule(
        name="aws-ecr-immutable-tags",
        description="ECR repositories have immutable tags, so a tag always names the same image.",
        remediation="Set imageTagMutability: IMMUTABLE.",
        resource_types=("aws:ecr/repository:Repository",),
        check=ecr_immutable_tags,
    ),
    Rule(
        name="aws-ecr-scan-on-push",
        description="ECR repositories scan every pushed image for vulnerabilities.",
        remediation="Set imageScanningConfiguration: {scanOnPush: true}.",
        resource_types=("aws:ecr/repository:Repository",),
        check=ecr_scan_on_push,
    ),
    Rule(
        name="aws-s3-private",
        description="S3 buckets (model weights, logs) block every kind of public access.",
        remediation="Add an aws.s3.BucketPublicAccessBlock for the bucket with blockPublicAcls, "
        "blockPublicPolicy, ignorePublicAcls and restrictPublicBuckets all true; use no public canned ACL.",
        resource_types=None,
        check=s3_private,
    ),
    Rule(
        name="aws-s3-encrypted",
        description="S3 buckets (model weights, logs) have default server-side encryption.",
        remediation="Add an aws.s3.BucketServerSideEncryptionConfiguration for the bucket with sseAlgorithm "
        "aws:kms (preferred, with a rotating key) or AES256.",
        resource_types=None,
        check=s3_encrypted,
    ),
    Rule(
        name="aws-s3-versioned",
        description="S3 buckets (model weights, logs) are versioned, so overwrites and deletes can be undone.",
        remediation="Add an aws.s3.BucketVersioning for the bucket with versioningConfiguration.status: Enabled.",
        resource_types=None,
        check=s3_versioned,
    ),
    Rule(
        name="aws-log-retention",
        description="CloudWatch log groups have a retention period.",
        remediation="Set retentionInDays on every aws.cloudwatch.LogGroup (llmplane uses 90 for control-plane "
        "logs).",
        resource_types=("aws:cloudwatch/logGroup:LogGroup",),
        check=log_retention,
    ),
    Rule(
        name="aws-required-tags",
        description="Every taggable AWS resource carries the environment, cost-center, owner and managed-by "
        "tags.",
        remediation="Pass tags=Ownership(...).tags() to the resource (components.labels.Ownership).",
        resource_types=("aws:*",),
        check=required_tags,
    ),
    Rule(
        name="aws-kms-key-rotation",
        description="Symmetric KMS keys rotate automatically.",
        remediation="Set enableKeyRotation: true on the aws.kms.Key.",
        resource_types=("aws:kms/key:Key",),
        check=kms_rotation,
    ),
]
