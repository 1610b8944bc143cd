"""The nodes of the environment's resource tree: environment (the stack) → cluster (its GpuCluster component) →
model → version. A model's and a version's resources hang under these, so `pulumi preview`, the state and the
policies read a resource's cluster, model and version from its place in the tree.

Components that used to sit at the stack's root keep their earlier URN as an alias (`MOVED_FROM_ROOT`); their own
children inherit it, so an existing stack is updated in place, never replaced."""

from __future__ import annotations

import pulumi

MOVED_FROM_ROOT = pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
"""Options of a component that earlier stacks registered at the root."""


class ModelNode(pulumi.ComponentResource):
    """One model in one cluster: its route and its versions."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmplane:environment:Model", name, None, opts)
        self.register_outputs({})


class VersionNode(pulumi.ComponentResource):
    """One deployed version of a model in one cluster: its Service, autoscaler and inference pool."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmplane:environment:ModelVersion", name, None, opts)
        self.register_outputs({})
