"""`make render`: the local stack written as manifests for GitOps, by the official provider, with no secret in them.

The same program as `make up`, with the cluster's target swapped for a render folder (stacks.local.render_config),
through the real engine. The rendered objects must validate against the Kubernetes schema, pass checkov, and
hold no secret value: Secrets are rendered without their data and say how to provide it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from llmplane.components.serving.namespace import OUT_OF_BAND_ANNOTATION
from llmplane.toolchain import checkov as toolchain_checkov

from tests.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
CUSTOM_KINDS = {"Gateway", "HTTPRoute", "ScaledObject", "ServiceMonitor", "PrometheusRule",
                "CustomResourceDefinition"}
"""Kinds outside the core Kubernetes schema (CRDs, and the CRD objects themselves are large upstream files)."""


class Rendered:
    def __init__(self, engine: Engine, folder: Path, result: dict[str, Any]) -> None:
        self.engine, self.folder, self.result = engine, folder, result

    def manifests(self) -> list[Path]:
        return sorted(self.folder.rglob("*.yaml"))

    def objects(self) -> list[dict[str, Any]]:
        return [doc for path in self.manifests() for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    tmp = tmp_path_factory.mktemp("render")
    folder = tmp / "manifests"

    def aim(cluster: dict[str, Any]) -> None:
        cluster["renderDir"] = str(folder)

    engine = Engine(tmp, aim)
    return Rendered(engine, folder, engine.up())


def test_render_writes_the_stack_as_manifests(rendered: Rendered) -> None:
    assert rendered.result["result"] == "succeeded"
    kinds = {obj["kind"] for obj in rendered.objects()}
    assert {"Namespace", "Deployment", "Service", "HTTPRoute", "ScaledObject", "CustomResourceDefinition"} <= kinds


def test_secrets_are_rendered_without_their_data_and_say_how_to_provide_it(rendered: Rendered) -> None:
    secrets = [obj for obj in rendered.objects() if obj["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        assert not secret.get("data") and not secret.get("stringData"), secret
        how = secret["metadata"]["annotations"][OUT_OF_BAND_ANNOTATION]
        assert how.startswith(f"kubectl -n llmplane create secret generic {secret['metadata']['name']} ")
    texts = [path.read_text() for path in rendered.manifests()]
    for value in rendered.engine.secret_config_values():
        assert not any(value in text for text in texts), "a secret config value reached a rendered file"


def test_rendered_manifests_validate_against_the_kubernetes_schema(rendered: Rendered) -> None:
    import kubernetes_validate

    checked = 0
    for obj in rendered.objects():
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, "1.33", strict=True)
        checked += 1
    assert checked >= 8


def test_checkov_finds_nothing_unexplained(rendered: Rendered) -> None:
    checkov = toolchain_checkov.path()
    assert checkov.exists(), "checkov is missing: run `make test-setup` (python -m llmplane.toolchain.checkov)"
    exemptions = yaml.safe_load((ROOT / "policies" / "checkov_exemptions.yaml").read_text()) or {}
    assert all(reason for reason in exemptions.values()), "every exemption states its reason"
    skip = ["--skip-check", ",".join(exemptions)] if exemptions else []
    done = subprocess.run([str(checkov), "-d", str(rendered.folder), "--framework", "kubernetes",
                           "--skip-download", "--quiet", "--compact", "-o", "json", *skip],
                          capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(done.stdout)
    summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
    assert summary["passed"] > 50
    assert summary["failed"] == 0, done.stdout[-3000:]
