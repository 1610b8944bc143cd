"""CustomResourceDefinitions: the CRDs a cluster needs before any custom resource of theirs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.options import children_of


@dataclass(frozen=True)
class CustomResourceDefinitionsArgs:
    """The CRDs to install."""

    documents: Sequence[dict]
    """CustomResourceDefinition objects as published by their projects (e.g. parsed from their release YAML)."""


class CustomResourceDefinitions(pulumi.ComponentResource):
    """Installs CRDs as ordinary resources, so `depends_on` this component orders every custom resource after
    them, and a CRD upgrade is a reviewed diff like any other."""

    names: pulumi.Output[list[str]]
    """Names of the installed CRDs (`<plural>.<group>`)."""

    def __init__(self, name: str, args: CustomResourceDefinitionsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:cluster:CustomResourceDefinitions", name, None, opts)
        names = []
        for document in args.documents:
            if document.get("kind") != "CustomResourceDefinition":
                raise ValueError(f"CustomResourceDefinitions takes CRDs only, got a {document.get('kind')}")
            metadata = {key: value for key, value in document["metadata"].items() if key in ("name", "annotations")}
            group = document["spec"]["group"]
            metadata["labels"] = {**document["metadata"].get("labels", {}),
                                  **k8s_labels(name=group, instance=metadata["name"], component="crd")}
            crd = k8s.apiextensions.v1.CustomResourceDefinition(
                f"{name}-{metadata['name']}",
                metadata=metadata,
                spec=document["spec"],
                opts=children_of(self, opts),
            )
            names.append(crd.metadata.name)
        self.names = pulumi.Output.all(*names)
        self.register_outputs({"names": self.names})
