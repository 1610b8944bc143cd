"""The Pulumi program: load the spec once from stack config, stop cleanly if invalid, else compose."""

from __future__ import annotations

import json

import pulumi
from pulumi.runtime.config import CONFIG

from .compose import Secrets, compose, psk_secret_key
from .spec import PlatformSpec, SpecError, load_spec
from .spec.addressing import TUNNELS_PER_CONNECTION
from .spec.load import SECRETS_KEY


def _secrets(spec_secret_keys: list[str], psk_keys: list[str]) -> Secrets:
    """Read `llmplane:secrets` as a Pulumi secret object; only the keys the spec references are required."""
    config = pulumi.Config("llmplane")
    raw = config.get_secret_object(SECRETS_KEY)
    if raw is None:
        raise pulumi.RunError(
            "llmplane:secrets is not set; add the vLLM API key with:\n"
            "  pulumi config set --secret --path 'llmplane:secrets.vllmApiKey' <key>"
        )
    secrets = pulumi.Output.secret(raw)
    return Secrets(
        api_key=secrets.apply(lambda s: _require(s, "vllmApiKey")),
        kubeconfigs={key: secrets.apply(lambda s, k=key: _require(s, k)) for key in spec_secret_keys},
        preshared_keys={key: secrets.apply(lambda s, k=key: _require(s, k)) for key in psk_keys},
    )


def _require(secrets: dict, key: str) -> str:
    value = secrets.get(key)
    if not value:
        raise pulumi.RunError(f"llmplane:secrets.{key} is not set; set it with: "
                              f"pulumi config set --secret --path 'llmplane:secrets.{key}' <value>")
    return value if isinstance(value, str) else json.dumps(value)


def kubeconfig_keys(spec: PlatformSpec) -> list[str]:
    """Secret keys of the kubeconfigs the spec's clusters name."""
    return [c.kubeconfig_secret for c in spec.clusters if c.kubeconfig_secret]


def psk_keys(spec: PlatformSpec) -> list[str]:
    """Secret keys of the pre-shared keys of links that bring their own."""
    return [psk_secret_key(link.name, cluster, i) for link in spec.hybrid if link.preshared_key_secrets
            for cluster in link.cloud_clusters for i in range(TUNNELS_PER_CONNECTION)]


def main() -> None:
    """Entry point used by `stacks/__main__.py` (engine) and the offline plan (mocks)."""
    environment = pulumi.get_stack()
    try:
        spec = load_spec(CONFIG.get(), environment)
    except SpecError as error:
        raise pulumi.RunError(error.render()) from None
    outputs = compose(spec, _secrets(kubeconfig_keys(spec), psk_keys(spec)),
                      gcp_project=pulumi.Config("gcp").get("project"))
    for key, value in outputs.items():
        pulumi.export(key, value)
