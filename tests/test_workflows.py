"""Delivery workflows: tests and offline diffs on every pull request, previews with credentials, gated deploys."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from llmplane.toolchain import gotools

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_actionlint_passes():
    binary = str(gotools.build(gotools.TOOLS["actionlint"]))
    done = subprocess.run([binary, "-color=false", *sorted(map(str, WORKFLOWS.glob("*.yml")))], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_pull_requests_run_the_readme_tests_and_post_an_offline_diff_per_environment():
    jobs = _load("pull-request.yml")["jobs"]
    assert any("bash .ci/run" in step.get("run", "") for step in jobs["test"]["steps"])
    diff = jobs["offline-diff"]
    assert diff["strategy"]["matrix"]["environment"] == ["local", "dev", "staging", "prod"]
    commands = " ".join(step.get("run", "") for step in diff["steps"])
    assert "llmplane diff" in commands and "gh pr comment" in commands


def test_real_previews_need_configured_credentials_and_use_oidc():
    preview = _load("pull-request.yml")["jobs"]["preview"]
    assert "AWS_ROLE_ARN" in preview["if"]
    assert preview["permissions"]["id-token"] == "write"
    commands = " ".join(step.get("run", "") for step in preview["steps"])
    assert "--policy-pack policies" in commands
    text = (WORKFLOWS / "pull-request.yml").read_text() + (WORKFLOWS / "pulumi-up.yml").read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text, "no long-lived keys"


def test_merges_deploy_dev_then_staging_then_prod_behind_environments():
    jobs = _load("deploy.yml")["jobs"]
    assert jobs["staging"]["needs"] == "dev" and jobs["prod"]["needs"] == "staging"
    assert [jobs[name]["with"]["environment"] for name in ("dev", "staging", "prod")] == ["dev", "staging", "prod"]
    up = _load("pulumi-up.yml")["jobs"]["up"]
    assert up["environment"] == "${{ inputs.environment }}", "GitHub environments carry prod's required approval"


def test_the_test_job_keeps_built_tools_and_go_s_build_cache_keyed_by_the_pins():
    steps = _load("pull-request.yml")["jobs"]["test"]["steps"]
    [cache] = [s for s in steps if s.get("uses", "").startswith("actions/cache@")]
    assert {"~/.cache/llmplane", "~/.cache/go-build"} <= set(cache["with"]["path"].split())
    for pins in ("toolchain/gotools.py", "toolchain/go/*/go.sum", "facts/images.py", "toolchain/prerequisites.py"):
        assert f"'{pins}'" in cache["with"]["key"], pins
    assert steps.index(cache) < next(i for i, s in enumerate(steps) if "bash .ci/run" in s.get("run", ""))
