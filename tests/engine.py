"""The real Pulumi engine on the local stack, for the tests: a throwaway file backend, and a copy of the local
environment aimed at the test's own target, so neither .state/ nor environments/ is touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
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


class Engine:
    """`pulumi` against the project, with a throwaway backend and the local environment aimed at the test's
    target (a cluster's kubeconfig, or a render folder)."""

    def __init__(self, tmp: Path, aim: Callable[[dict[str, Any]], None]) -> None:
        self.tmp = tmp
        self.aim = aim
        self.env = engine_env(tmp)
        self.policy = ["--policy-pack", "policies"]
        (tmp / "state").mkdir()
        self.run("stack", "init", STACK)
        self.config = self.config_file("base", lambda config: None)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["pulumi", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=900, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"pulumi {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def config_file(self, name: str, edit) -> Path:
        """The local environment aimed at the test's target by `aim(cluster)`, edited by `edit(config)`."""
        config = yaml.safe_load((ROOT / "environments" / f"Pulumi.{STACK}.yaml").read_text())
        cluster = config["config"]["llmplane:clusters"][0]
        for key in ("kubeconfigFile", "kubeconfigSecret", "renderDir"):
            cluster.pop(key, None)
        self.aim(cluster)
        edit(config["config"])
        path = self.tmp / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def up(self, config: Path | None = None) -> dict[str, Any]:
        """`make up`'s update (refresh, preview with the policy pack, then write); returns its history entry."""
        done = subprocess.run([sys.executable, "-m", "llmplane.stacks.local.safe_up", "--stack", STACK, "--",
                               "--config-file", str(config or self.config), *self.policy],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"make up's update failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return self.last_update()

    def last_update(self) -> dict[str, Any]:
        history = self.run("stack", "history", "--stack", STACK, "--json", "--page-size", "1").stdout
        return json.loads(history)[0]

    def preview(self, config: Path, *extra: str) -> list[tuple[str, str]]:
        """(op, resource name) of every step of a preview that is not `same`."""
        shown = json.loads(self.run("preview", "--stack", STACK, "--json", "--config-file", str(config),
                                    *self.policy, *extra).stdout)
        return [(s["op"], s["urn"].split("::")[-1]) for s in shown["steps"] if s["op"] != "same"]

    def kubernetes_resources(self) -> list[dict[str, Any]]:
        """Every Kubernetes object in the stack's state (not providers, not components)."""
        exported = json.loads(self.run("stack", "export", "--stack", STACK).stdout)
        return [r for r in exported["deployment"].get("resources", [])
                if r["type"].startswith("kubernetes:") and not r["type"].startswith("pulumi:providers")]

    def secret_config_values(self) -> list[str]:
        shown = self.run("config", "--stack", STACK, "--config-file", str(self.config), "--show-secrets",
                         "--json").stdout
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


def wait_for(condition, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def inline_program(folder: Path, name: str, source: str) -> Path:
    """A one-file Pulumi project using the project's virtualenv (and so its packages), for tests that need a
    program other than the stack."""
    folder.mkdir(parents=True)
    (folder / "Pulumi.yaml").write_text(
        f"name: {name}\nruntime:\n  name: python\n  options:\n    virtualenv: {ROOT / '.venv'}\n")
    (folder / "__main__.py").write_text(source)
    return folder
