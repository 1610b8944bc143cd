"""Resource options shared by the components."""

from __future__ import annotations

import pulumi


def children_of(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """Options for a component's children: parented to it, and waiting for what the component itself was told to
    wait for (`depends_on`, e.g. the CRDs of its custom resources). Pulumi does not hand a component's
    `depends_on` on to its children, so a custom resource would otherwise race its CRD."""
    return pulumi.ResourceOptions(parent=parent, depends_on=opts.depends_on if opts else None)
