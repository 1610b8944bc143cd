"""OnPremGpuCluster: an existing cluster reached by a kubeconfig secret, or a folder manifests are rendered to."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.options import children_of

from .base import ClusterArgs, GpuCluster


class OnPremGpuCluster(GpuCluster):
    """A Kubernetes provider for a cluster llmplane does not create; GPU nodes are labelled by its operators.

    With `kubeconfig` it deploys to that cluster; without, it renders manifests to `render_dir` (GitOps)."""

    render_dir: pulumi.Output[str]
    """Where manifests are rendered, or '' when deploying to a real cluster."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        # Named OnPremCluster until the GPU clusters took one naming; the alias keeps a stack's state in place.
        super().__init__("llmplane:cluster:OnPremGpuCluster", name, None, pulumi.ResourceOptions.merge(
            opts or pulumi.ResourceOptions(), pulumi.ResourceOptions(aliases=[
                pulumi.Alias(type_="llmplane:cluster:OnPremCluster")])))
        if args.kubeconfig is None and not args.render_dir:
            raise ValueError(f"OnPremGpuCluster {name}: give `kubeconfig` (deploy to the cluster) or `render_dir` "
                             "(render manifests to a folder); it has neither")
        if args.kubeconfig is not None:
            self.provider = k8s.Provider(
                f"{name}-k8s",
                kubeconfig=pulumi.Output.secret(args.kubeconfig),
                enable_server_side_apply=True,
                opts=children_of(self, opts),
            )
            render_dir = ""
        else:
            render_dir = args.render_dir or ""
            self.provider = k8s.Provider(
                f"{name}-k8s",
                render_yaml_to_directory=render_dir,
                opts=children_of(self, opts),
            )
        self.cluster_name = pulumi.Output.from_input(args.name)
        self.render_dir = pulumi.Output.from_input(render_dir)
        self.register_outputs({"cluster_name": self.cluster_name, "render_dir": self.render_dir})
