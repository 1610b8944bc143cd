"""The real Pulumi engine on the real local stack, twice.

Uses the toolchain `make test` bootstraps (.tools/bin), a throwaway file
backend, and a throwaway copy of the local stack's config whose render
folders point into the temporary directory, so neither .state/, build/ nor
environments/ is touched. The first `pulumi up` must create resources and
render a GPU Deployment, the second must change nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOLS_BIN = ROOT / ".tools" / "bin"
STACK = "local"


def engine_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PULUMI_BACKEND_URL"] = f"file://{tmp / 'state'}"
    env.setdefault("PULUMI_CONFIG_PASSPHRASE", "llmplane-local")
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
    return env


def stack_config_copy(tmp: Path) -> Path:
    """The local stack's config with every cluster's renderDir moved under tmp."""
    config = yaml.safe_load((ROOT / "environments" / f"Pulumi.{STACK}.yaml").read_text())
    for cluster in config["config"].get("llmplane:clusters", []):
        if cluster.get("renderDir"):
            cluster["renderDir"] = str(tmp / "render" / cluster["name"])
    copy = tmp / f"Pulumi.{STACK}.yaml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False))
    return copy


class Engine:
    """`pulumi` against the project, with the throwaway backend and config."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = engine_env(tmp)
        self.config: Path | None = None
        has_policies = (ROOT / "policies" / "PulumiPolicy.yaml").exists()
        self.policy = ["--policy-pack", "policies"] if has_policies else []

    def run(self, *args: str) -> str:
        done = subprocess.run(["pulumi", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=600, check=False)
        if done.returncode != 0:
            pytest.fail(f"pulumi {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def init_stack(self) -> None:
        # `stack init` keeps the passphrase salt in environments/; it adds one
        # only if the file has none, as `make up` does. Copy the config after.
        (self.tmp / "state").mkdir()
        self.run("stack", "init", STACK)
        self.config = stack_config_copy(self.tmp)

    def up(self) -> dict[str, Any]:
        """Run an update; return its history entry."""
        self.run("up", "--stack", STACK, "--yes", "--skip-preview", "--config-file", str(self.config), *self.policy)
        return json.loads(self.run("stack", "history", "--stack", STACK, "--json", "--page-size", "1"))[0]

    def preview_expecting_no_changes(self) -> None:
        self.run("preview", "--stack", STACK, "--expect-no-changes", "--config-file", str(self.config), *self.policy)

    def secret_config_values(self) -> list[str]:
        shown = self.run("config", "--stack", STACK, "--config-file", str(self.config), "--show-secrets", "--json")
        values: list[str] = []
        for entry in json.loads(shown).values():
            if entry.get("secret"):
                values.extend(_leaf_strings(entry.get("objectValue", entry.get("value"))))
        return values


def _leaf_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaf_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _leaf_strings(v)]
    return [value] if isinstance(value, str) and len(value) >= 4 else []


@dataclass
class TwoUpdates:
    engine: Engine
    first: dict[str, Any]
    second: dict[str, Any]

    def manifests(self) -> list[Path]:
        return sorted((self.engine.tmp / "render").rglob("*.yaml"))


@pytest.fixture(scope="module")
def updates(tmp_path_factory: pytest.TempPathFactory) -> TwoUpdates:
    engine = Engine(tmp_path_factory.mktemp("engine"))
    if not shutil.which("pulumi", path=engine.env["PATH"]):
        pytest.skip("the Pulumi CLI is missing: run `make test`, which bootstraps .tools/bin")
    engine.init_stack()
    first = engine.up()
    return TwoUpdates(engine, first, engine.up())


def test_first_up_creates_resources(updates: TwoUpdates) -> None:
    assert updates.first["result"] == "succeeded"
    assert updates.first["resourceChanges"].get("create", 0) > 0


def test_first_up_renders_a_gpu_deployment(updates: TwoUpdates) -> None:
    objects = [yaml.safe_load(path.read_text()) for path in updates.manifests()]
    limits = [
        container.get("resources", {}).get("limits", {})
        for obj in objects if obj["kind"] == "Deployment"
        for container in obj["spec"]["template"]["spec"]["containers"]
    ]
    assert any("nvidia.com/gpu" in limit for limit in limits), limits


def test_no_secret_config_value_is_rendered(updates: TwoUpdates) -> None:
    texts = [path.read_text() for path in updates.manifests()]
    for value in updates.engine.secret_config_values():
        assert not any(value in text for text in texts), "a secret config value reached a rendered file"


def test_second_up_changes_nothing(updates: TwoUpdates) -> None:
    assert updates.second["result"] == "succeeded"
    assert set(updates.second["resourceChanges"]) == {"same"}, updates.second["resourceChanges"]


def test_preview_expects_no_changes(updates: TwoUpdates) -> None:
    updates.engine.preview_expecting_no_changes()


CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CUSTOM_KINDS = {"Gateway", "HTTPRoute", "ScaledObject", "ServiceMonitor", "PrometheusRule"}
"""Kinds from CRDs (Gateway API, KEDA, Prometheus Operator): not in the core Kubernetes schema."""


def test_rendered_manifests_validate_against_the_kubernetes_schema(updates: TwoUpdates) -> None:
    import kubernetes_validate

    checked = 0
    for path in updates.manifests():
        obj = yaml.safe_load(path.read_text())
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, "1.33", strict=True)
        checked += 1
    assert checked >= 8


def test_checkov_finds_nothing_unexplained(updates: TwoUpdates) -> None:
    if not CHECKOV.exists():
        pytest.skip("checkov is missing: run `make test`, which installs it into .tools/checkov")
    exemptions = yaml.safe_load((ROOT / "policies" / "checkov_exemptions.yaml").read_text()) or {}
    assert all(reason for reason in exemptions.values()), "every exemption states its reason"
    skip = ["--skip-check", ",".join(exemptions)] if exemptions else []
    done = subprocess.run([str(CHECKOV), "-d", str(updates.engine.tmp / "render"), "--framework", "kubernetes",
                           "--skip-download", "--quiet", "--compact", "-o", "json", *skip],
                          capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(done.stdout)
    summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
    assert summary["passed"] > 50
    assert summary["failed"] == 0, done.stdout[-3000:]


def test_editing_replica_bounds_changes_exactly_that_autoscaler(updates: TwoUpdates) -> None:
    engine = updates.engine
    config = yaml.safe_load(engine.config.read_text())
    config["config"]["llmplane:models"]["llama-3-8b"]["replicas"]["max"] += 1
    config["config"]["llmplane:clusters"][0]["pools"][0]["nodes"]["max"] += 1
    edited = engine.tmp / "edited.yaml"
    edited.write_text(yaml.safe_dump(config, sort_keys=False))
    preview = json.loads(engine.run("preview", "--stack", STACK, "--json", "--config-file", str(edited),
                                    *engine.policy))
    changed = [(s["op"], s["urn"].split("::")[-1]) for s in preview["steps"] if s["op"] != "same"]
    assert changed == [("update", "local-llama-3-8b-1.0.0-scaledobject")], changed


def test_a_canary_step_previews_as_a_route_weight_change_only(updates: TwoUpdates) -> None:
    """With a canary in flight (90/10), moving it to 25 is, in a real preview, one HTTPRoute update."""
    engine = updates.engine

    def config_with(stable: int, canary: int) -> Path:
        config = yaml.safe_load(engine.config.read_text())
        model = config["config"]["llmplane:models"]["llama-3-8b"]
        model["versions"] = [{"version": "1.0.0", "weight": stable},
                             {"version": "1.1.0", "weight": canary, "role": "canary",
                              "replicas": {"min": 1, "max": 1}}]
        config["config"]["llmplane:clusters"][0]["pools"][0]["nodes"]["max"] = 3
        path = engine.tmp / f"canary-{canary}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    engine.run("up", "--stack", STACK, "--yes", "--skip-preview", "--config-file", str(config_with(90, 10)),
               *engine.policy)
    preview = json.loads(engine.run("preview", "--stack", STACK, "--json", "--config-file",
                                    str(config_with(75, 25)), *engine.policy))
    changed = [(s["op"], s["urn"].split("::")[-1]) for s in preview["steps"] if s["op"] != "same"]
    assert changed == [("update", "local-llama-3-8b-route")], changed
    route = next(s for s in preview["steps"] if s["op"] == "update")
    weights = [b["weight"] for b in route["newState"]["inputs"]["spec"]["rules"][-1]["backendRefs"]]
    assert weights == [75, 25]
