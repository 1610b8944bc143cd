"""Resource options shared by the components."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi


def children_of(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None, *,
                depends_on: Sequence[pulumi.Resource] = (), **options: Any) -> pulumi.ResourceOptions:
    """Options for a component's children: parented to it, and waiting for what the component itself was told to
    wait for (`depends_on`, e.g. the CRDs of its custom resources). Pulumi does not hand a component's
    `depends_on` on to its children, so a custom resource would otherwise race its CRD. `depends_on` adds what
    this child waits for besides; `options` are any other ResourceOptions (provider, protect, aliases...).
    Every component creates its children with these options (tests/test_component_options.py)."""
    inherited = opts.depends_on if opts else None
    if isinstance(inherited, pulumi.Resource):
        inherited = [inherited]
    if inherited is not None and not isinstance(inherited, (list, tuple)):
        raise TypeError(f"{parent._name}: depends_on must be a resource or a list of resources (not an Output), "
                        "so that its children can wait for them too")
    waits = [*(inherited or ()), *depends_on]
    return pulumi.ResourceOptions(parent=parent, depends_on=waits or None, **options)
