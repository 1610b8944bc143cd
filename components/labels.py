"""The labels every Kubernetes object carries and the tags every cloud resource carries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ownership:
    """Who pays for and answers for an environment's resources."""

    environment: str
    owner: str
    cost_center: str

    def tags(self) -> dict[str, str]:
        """Tags for every taggable cloud resource."""
        return {
            "environment": self.environment,
            "cost-center": self.cost_center,
            "owner": self.owner,
            "managed-by": "pulumi-llmplane",
        }

    def gcp_labels(self) -> dict[str, str]:
        """The same tags as GCP labels (lowercase, no '-' restrictions on values broken)."""
        return {key.replace("-", "_"): value.lower().replace(".", "-") for key, value in self.tags().items()}


def k8s_labels(
    name: str,
    instance: str,
    component: str,
    version: str = "",
    model: str = "",
    model_version: str = "",
) -> dict[str, str]:
    """Recommended Kubernetes labels plus llmplane's model labels (empty ones left out)."""
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "llmplane",
        "app.kubernetes.io/managed-by": "pulumi",
        "llmplane.dev/model": model,
        "llmplane.dev/model-version": model_version,
    }
    return {key: value for key, value in labels.items() if value}
