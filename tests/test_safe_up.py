"""`make up`'s update (stacks/local/safe_up.py): checks before it writes, one at a time, and cleans up after an
interrupted run.

A mandatory policy violation, stack-level or per resource, stops the update in its preview: nothing is rendered
and the state holds no resource. Both run through the real engine, rendering to a folder (no cluster needed).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from llmplane.policies.config import pack_config
from llmplane.stacks.local import safe_up

from tests.engine import ROOT, Engine, engine_env, inline_program
from tests.planning import plan_of


def _safe_up(cwd: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmplane.stacks.local.safe_up", "--stack", "local", "--", *extra],
                          cwd=cwd, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=600, check=False)


def test_a_mandatory_stack_policy_stops_make_up_before_anything_is_written(tmp_path: Path) -> None:
    render = tmp_path / "render"
    engine = Engine(tmp_path, lambda cluster: cluster.update(renderDir=str(render)))
    config = pack_config(plan_of("local").spec)
    config["platform-service-monitor"]["enforcementLevel"] = "mandatory"  # local has no ServiceMonitor
    (tmp_path / "policy.json").write_text(json.dumps(config))
    done = _safe_up(ROOT, engine.env, "--config-file", str(engine.config), "--policy-pack", "policies",
                    "--policy-pack-config", str(tmp_path / "policy.json"))
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "[mandatory]  platform-service-monitor" in output, output
    assert "Keep `observability.enabled: true`" in output, "the message carries the fix"
    assert not render.exists() or not any(render.rglob("*.yaml")), "nothing was rendered"
    exported = json.loads(engine.run("stack", "export", "--stack", "local").stdout)
    assert not exported["deployment"].get("resources"), "the state holds no resource"


def test_a_mandatory_resource_policy_stops_every_resource_not_only_the_bad_one(tmp_path: Path) -> None:
    """One unlabelled ConfigMap among good objects: the preview refuses, so the good ones are not written either."""
    render = tmp_path / "render"
    program = inline_program(tmp_path / "program", "labels",
        "import pulumi, pulumi_kubernetes as k8s\n"
        "from components.labels import k8s_labels\n"
        f"p = k8s.Provider('render', render_yaml_to_directory={str(render)!r})\n"
        "opts = pulumi.ResourceOptions(provider=p)\n"
        "k8s.core.v1.ConfigMap('good', metadata={'name': 'good', 'labels': k8s_labels('good', 'good', 'x')},"
        " data={'a': 'b'}, opts=opts)\n"
        "k8s.core.v1.ConfigMap('bare', metadata={'name': 'bare'}, data={'a': 'b'}, opts=opts)\n")
    env = {**engine_env(tmp_path), "PYTHONPATH": str(ROOT)}
    (tmp_path / "state").mkdir()
    subprocess.run(["pulumi", "stack", "init", "local"], cwd=program, env=env, check=True, capture_output=True)
    config = {"k8s-recommended-labels": {"enforcementLevel": "mandatory"}}
    (tmp_path / "policy.json").write_text(json.dumps(config))
    done = _safe_up(program, env, "--policy-pack", str(ROOT / "policies"),
                    "--policy-pack-config", str(tmp_path / "policy.json"))
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "k8s-recommended-labels" in output and "bare" in output, output
    assert "components.labels.k8s_labels" in output, "the message carries the fix"
    assert not render.exists() or not any(render.rglob("*.yaml")), "not even the good ConfigMap was rendered"


def test_a_second_update_of_the_same_stack_fails_at_once_without_advising_cancel(tmp_path: Path) -> None:
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp_path}"}
    key = safe_up.lock_key("local", env["PULUMI_BACKEND_URL"])
    safe_up.LOCKS.mkdir(parents=True, exist_ok=True)
    with (safe_up.LOCKS / f"{key}.lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        done = _safe_up(ROOT, env)
    assert done.returncode == safe_up.EXIT_BUSY
    assert "another update of stack 'local' is running" in done.stderr
    assert "cancel" not in done.stdout + done.stderr


def test_processes_left_by_a_killed_update_are_stopped(tmp_path: Path) -> None:
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True)
    record = tmp_path / "local.pgid"
    record.write_text(str(orphan.pid))
    safe_up.stop_orphans(record)
    orphan.wait(timeout=10)
    assert orphan.returncode == -signal.SIGTERM
    assert not record.exists()


def test_pending_operations_of_an_interrupted_update_are_cleared_and_said(tmp_path: Path) -> None:
    render = tmp_path / "render"
    engine = Engine(tmp_path, lambda cluster: cluster.update(renderDir=str(render)))
    # What a killed update leaves in the file backend (`pulumi stack import` would strip it).
    checkpoint_file = next((tmp_path / "state").rglob("local.json"))
    checkpoint = json.loads(checkpoint_file.read_text())
    checkpoint["checkpoint"].setdefault("latest", {})["pending_operations"] = [{"type": "creating", "resource": {
        "urn": "urn:pulumi:local::llmplane::kubernetes:core/v1:ConfigMap::half-made", "custom": True,
        "type": "kubernetes:core/v1:ConfigMap"}}]
    checkpoint_file.write_text(json.dumps(checkpoint))
    started = time.monotonic()
    done = _safe_up(ROOT, engine.env, "--config-file", str(engine.config), "--policy-pack", "policies")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "interrupted with 1 operation(s) in flight (creating)" in done.stdout
    after = json.loads(engine.run("stack", "export", "--stack", "local").stdout)
    assert not after["deployment"].get("pending_operations")
    assert any(render.rglob("*.yaml")) and time.monotonic() - started < 600
