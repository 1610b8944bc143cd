"""The Pulumi program: load the spec once from stack config, stop cleanly if invalid, else compose."""

from __future__ import annotations

import json

import pulumi
from llmplane.facts.addressing import TUNNELS_PER_CONNECTION
from llmplane.spec import PlatformSpec, SpecError, load_spec
from llmplane.spec.load import SECRETS_KEY
from pulumi.runtime.config import CONFIG

from .compose import Secrets, compose, installs_gateway, kubeconfig_file_key, psk_secret_key
from .environments import PROJECT_ROOT

STORAGE_FILES = {"aws": "aws-credentials", "gcp": "gcp-service-account.json"}
"""`llmplane:secrets.storageCredentials.<cloud>` → the file the weights fetcher reads (boto3's shared credentials
file, a Google service account key), for clusters without workload identity (on-prem)."""


def _secret_names() -> dict:
    """The shape of `llmplane:secrets` (names only, values blanked): which optional secrets are present decides
    which resources exist, and that must be known before any apply."""
    raw = CONFIG.get().get(f"llmplane:{SECRETS_KEY}")
    try:
        document = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {key: ({k: "" for k in value} if isinstance(value, dict) else "") for key, value in document.items()}


def _secrets(spec_secret_keys: list[str], psk_keys: list[str], storage_clouds: set[str],
             kubeconfig_files: list[str], tenant_keys: list[str]) -> Secrets:
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
        kubeconfigs={**{key: secrets.apply(lambda s, k=key: _require(s, k)) for key in spec_secret_keys},
                     **{kubeconfig_file_key(path): _kubeconfig_file(path) for path in kubeconfig_files}},
        preshared_keys={key: secrets.apply(lambda s, k=key: _require(s, k)) for key in psk_keys},
        tenant_keys={key: secrets.apply(lambda s, k=key: _require(s, k)) for key in tenant_keys},
        storage_credentials={
            STORAGE_FILES[cloud]: secrets.apply(lambda s, c=cloud: s["storageCredentials"][c])
            for cloud in storage_clouds if cloud in STORAGE_FILES
        },
    )


def _kubeconfig_file(path: str) -> pulumi.Output[str]:
    """A kubeconfig file's contents as a secret. Missing in a preview (the offline plan, a preview before the
    cluster exists) it is a placeholder with a warning; missing in an update it stops the run."""
    file = PROJECT_ROOT / path
    if file.is_file():
        return pulumi.Output.secret(file.read_text())
    fix = f"start the cluster with `llmplane cluster up` (`make up` does it), which writes {path}"
    if pulumi.runtime.is_dry_run():
        pulumi.log.warn(f"kubeconfig file {path} does not exist yet; {fix}")
        return pulumi.Output.secret(f"# {path} does not exist yet\n")
    raise pulumi.RunError(f"kubeconfig file {path} does not exist; {fix}")


def _require(secrets: dict, key: str) -> str:
    value = secrets.get(key)
    if not value:
        raise pulumi.RunError(f"llmplane:secrets.{key} is not set; set it with: "
                              f"pulumi config set --secret --path 'llmplane:secrets.{key}' <value>")
    return value if isinstance(value, str) else json.dumps(value)


STORAGE_SCHEMES = {"s3://": "aws", "gs://": "gcp"}
"""Weights URIs that need cloud credentials when the cluster has no workload identity."""


def uncredentialed_fetches(spec: PlatformSpec, storage_clouds: set[str]) -> list[str]:
    """Warnings for on-prem clusters that fetch weights from a cloud bucket without
    `llmplane:secrets.storageCredentials.<cloud>`: the fetcher then relies on whatever credentials the node has."""
    warnings = []
    for name, model in spec.models.items():
        for cluster in spec.clusters_of(model):
            if cluster.cloud != "onprem":
                continue
            for version in model.versions:
                uri = model.artifact(version.version).uri_for("onprem")
                cloud = next((c for scheme, c in STORAGE_SCHEMES.items() if uri.startswith(scheme)), None)
                if cloud and cloud not in storage_clouds:
                    warnings.append(
                        f"on-prem cluster '{cluster.name}' fetches {uri} ({name}:{version.version}) without "
                        f"llmplane:secrets.storageCredentials.{cloud}, so only the node's own credentials can read "
                        f"it; set them with: pulumi config set --secret --path "
                        f"'llmplane:secrets.storageCredentials.{cloud}' <file contents>, or add an https:// mirror")
    return warnings


def kubeconfig_keys(spec: PlatformSpec) -> list[str]:
    """Secret keys of the kubeconfigs the spec's clusters name."""
    return [c.kubeconfig_secret for c in spec.clusters if c.kubeconfig_secret]


def tenant_keys(spec: PlatformSpec) -> list[str]:
    """Secret keys of the tenants' API keys, where a cluster installs the gateway that checks them."""
    if not any(installs_gateway(c) for c in spec.clusters):
        return []
    return [key for tenant in spec.tenants for key in tenant.api_key_secrets]


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
    storage_clouds = set(_secret_names().get("storageCredentials") or {})
    for warning in uncredentialed_fetches(spec, storage_clouds):
        pulumi.log.warn(warning)
    files = [c.kubeconfig_file for c in spec.clusters if c.kubeconfig_file]
    outputs = compose(spec, _secrets(kubeconfig_keys(spec), psk_keys(spec), storage_clouds, files,
                                     tenant_keys(spec)),
                      gcp_project=pulumi.Config("gcp").get("project"))
    for key, value in outputs.items():
        pulumi.export(key, value)
