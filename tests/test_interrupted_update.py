"""An update interrupted at any point converges on the next `make up`: Ctrl-C (SIGINT to the whole process group,
as a terminal sends it) and a hard kill of `make up` alone (SIGKILL, which leaves pulumi and its plugins running
without it). Against the embedded cluster, with the real engine and provider.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from llmplane.stacks.local.embedded_cluster import EmbeddedCluster

from tests.engine import ROOT, STACK, Engine, wait_for

NAMESPACE = "llmplane"


def _start_update(engine: Engine) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llmplane.stacks.local.safe_up", "--stack", STACK, "--",
                             "--config-file", str(engine.config), *engine.policy],
                            cwd=ROOT, env=engine.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _wait_until_writing(cluster: EmbeddedCluster) -> None:
    """Interrupt mid-update: once the first objects exist, before the last ones do."""
    wait_for(lambda: cluster.kubectl("get", "crd", "-o", "name", check=False).count("\n") >= 3,
             "the update to start writing", timeout=180)


def _converged(engine: Engine, cluster: EmbeddedCluster) -> None:
    repaired = engine.up()
    assert repaired["result"] == "succeeded"
    again = engine.up()
    assert set(again["resourceChanges"]) == {"same"}, again["resourceChanges"]
    for resource in engine.kubernetes_resources():
        outputs: dict[str, Any] = resource["outputs"]
        where = ["-n", outputs["metadata"]["namespace"]] if outputs["metadata"].get("namespace") else []
        api = outputs["apiVersion"]
        kind = f"{outputs['kind'].lower()}.{api.split('/')[0]}" if "/" in api else outputs["kind"].lower()
        assert cluster.kubectl("get", kind, outputs["metadata"]["name"], *where, "-o", "name").strip()


@pytest.fixture
def engine(embedded_cluster: EmbeddedCluster, tmp_path: Path):
    kubeconfig = str(embedded_cluster.kubeconfig)
    engine = Engine(tmp_path, lambda c: c.update(kubeconfigFile=kubeconfig))
    yield engine
    engine.run("destroy", "--stack", STACK, "--yes", "--skip-preview", "--config-file", str(engine.config),
               check=False)
    wait_for(lambda: not embedded_cluster.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found",
                                                  "-o", "name"), "the serving namespace to be gone", timeout=120)


def test_ctrl_c_mid_update_then_make_up_ends_in_the_declared_state(engine, embedded_cluster):
    update = _start_update(engine)
    _wait_until_writing(embedded_cluster)
    os.killpg(update.pid, signal.SIGINT)
    update.wait(timeout=300)
    _converged(engine, embedded_cluster)


def test_make_up_killed_outright_leaves_nothing_behind_for_the_next_run(engine, embedded_cluster):
    update = _start_update(engine)
    _wait_until_writing(embedded_cluster)
    os.kill(update.pid, signal.SIGKILL)  # make up alone: pulumi and its plugins run on without it
    update.wait(timeout=30)
    started = time.monotonic()
    _converged(engine, embedded_cluster)
    assert time.monotonic() - started < 600
    leftovers = subprocess.run(["pgrep", "-f", f"pulumi up --stack {STACK} --yes --refresh --config-file "
                                               f"{engine.config}"], capture_output=True, text=True, check=False)
    assert leftovers.stdout.strip() == "", "no process of the killed update is left"
    history = json.loads(engine.run("stack", "history", "--stack", STACK, "--json").stdout)
    assert history[0]["result"] == "succeeded"
