"""GlobalRouting: one hostname for every region, latency-routed, health-checked, failing over to on-prem."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws
from llmplane.components.options import children_of

HEALTH_PATH_TEMPLATE = "/{model}/health"
"""Path on each regional gateway that reaches a model's /health (see ModelRollout)."""


def regional_hostname(cluster: str, hostname: str) -> str:
    """The per-cluster name, e.g. `aws-use1.llm.llmplane.dev`; external-dns in the cluster keeps it pointing at
    the cluster's gateway load balancer."""
    return f"{cluster}.{hostname}"


@dataclass(frozen=True)
class RoutedCluster:
    """A cluster whose regional gateway serves the global hostname."""

    name: str
    """Cluster name: its regional hostname is `<name>.<hostname>`."""
    cloud: Literal["aws", "gcp", "onprem"]
    """Cloud regions share traffic by latency; on-prem clusters take it on failover."""
    region: str
    """Cloud region (a GCP region is measured as the nearest AWS one)."""


@dataclass(frozen=True)
class GlobalRoutingArgs:
    """The hostname, its zone, and the clusters in failover order."""

    hostname: str
    """Public name clients use."""
    hosted_zone: str
    """Route 53 hosted zone that holds it."""
    clusters: Sequence[RoutedCluster]
    """Clusters serving the hostname; cloud ones share traffic by latency, on-prem ones take it on failover."""
    health_model: str
    """Model whose /health the checks probe."""
    tags: dict[str, str]
    """Tags for the health checks."""


class GlobalRouting(pulumi.ComponentResource):
    """Route 53: a health check per regional gateway, latency records across cloud regions, and a failover pair.

    On-prem first in `clusters` (the spec's failover order) makes on-prem the primary and the cloud regions the
    burst/failover secondary; otherwise the cloud regions are primary and on-prem (or the last region) takes over
    when every cloud region is unhealthy."""

    hostname: pulumi.Output[str]
    """The global hostname."""
    health_check_ids: pulumi.Output[list[str]]
    """Health check per regional gateway, in cluster order."""

    def __init__(self, name: str, args: GlobalRoutingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:networking:GlobalRouting", name, None, opts)
        if not any(c.cloud != "onprem" for c in args.clusters):
            raise ValueError(f"GlobalRouting {name}: latency routing needs at least one cloud cluster in `clusters`; "
                             f"got {[c.name for c in args.clusters]}")
        child = children_of(self, opts)
        zone = aws.route53.get_zone_output(name=args.hosted_zone, opts=pulumi.InvokeOptions(parent=self))
        latency_name = f"latency.{args.hostname}"
        checks = {}
        for cluster in args.clusters:
            checks[cluster.name] = aws.route53.HealthCheck(
                f"{name}-{cluster.name}-health",
                type="HTTPS",
                fqdn=regional_hostname(cluster.name, args.hostname),
                port=443,
                resource_path=HEALTH_PATH_TEMPLATE.format(model=args.health_model),
                request_interval=10,
                failure_threshold=3,
                measure_latency=True,
                tags={**args.tags, "Name": f"{cluster.name}-gateway"},
                opts=child,
            )
        cloud = [c for c in args.clusters if c.cloud != "onprem"]
        standby = [c for c in args.clusters if c.cloud == "onprem"] or cloud[-1:]
        for cluster in cloud:
            aws.route53.Record(
                f"{name}-{cluster.name}-latency",
                zone_id=zone.zone_id,
                name=latency_name,
                type="CNAME",
                ttl=30,
                records=[regional_hostname(cluster.name, args.hostname)],
                set_identifier=cluster.name,
                latency_routing_policies=[{"region": cluster.region if cluster.cloud == "aws" else _nearest(cluster)}],
                health_check_id=checks[cluster.name].id,
                opts=child,
            )
        any_cloud = aws.route53.HealthCheck(
            f"{name}-any-region-health",
            type="CALCULATED",
            child_health_threshold=1,
            child_healthchecks=[checks[c.name].id for c in cloud],
            tags={**args.tags, "Name": "any-cloud-region"},
            opts=child,
        )
        cloud_target = (latency_name, any_cloud.id)
        standby_target = (regional_hostname(standby[0].name, args.hostname), checks[standby[0].name].id)
        onprem_primary = args.clusters[0].cloud == "onprem"
        order = [standby_target, cloud_target] if onprem_primary else [cloud_target, standby_target]
        for role, (target, health_check) in zip(("PRIMARY", "SECONDARY"), order):
            aws.route53.Record(
                f"{name}-{role.lower()}",
                zone_id=zone.zone_id,
                name=args.hostname,
                type="CNAME",
                ttl=30,
                records=[target],
                set_identifier=role.lower(),
                failover_routing_policies=[{"type": role}],
                health_check_id=health_check,
                opts=child,
            )
        self.hostname = pulumi.Output.from_input(args.hostname)
        self.health_check_ids = pulumi.Output.all(*[checks[c.name].id for c in args.clusters])
        self.register_outputs({"hostname": self.hostname, "health_check_ids": self.health_check_ids})


_GCP_TO_AWS_LATENCY_REGION = {"us-central1": "us-east-2", "us-east1": "us-east-1", "us-east4": "us-east-1",
                              "us-west1": "us-west-2", "us-west4": "us-west-1", "europe-west1": "eu-west-1",
                              "europe-west4": "eu-central-1", "europe-west2": "eu-west-2",
                              "asia-northeast1": "ap-northeast-1", "asia-southeast1": "ap-southeast-1",
                              "asia-east1": "ap-northeast-1"}
"""Route 53 latency routing only knows AWS regions: a GCP region is measured as the nearest AWS one."""


def _nearest(cluster: RoutedCluster) -> str:
    return _GCP_TO_AWS_LATENCY_REGION.get(cluster.region, "us-east-1")
