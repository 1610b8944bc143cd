"""The offline toolchain without the engine: the small pure helpers around the language host, the Go tools'
cache, `make render`'s config and `make up`'s summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import struct_pb2
from llmplane.stacks.local.render_config import render_config
from llmplane.stacks.local.summary import describe_changes, describe_manifests, describe_pods
from llmplane.toolchain import gotools
from llmplane.toolchain.language_host import VirtualenvMissing, python_for
from llmplane.toolchain.plugin_server import engine_address
from llmplane.toolchain.program_runner import program_traceback
from pulumi.runtime.proto import language_pb2


def struct(value: dict) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(value)
    return result


# --- Language host and helpers ---------------------------------------------

def test_engine_address_is_the_last_positional_argument() -> None:
    assert engine_address(["--logtostderr", "-v=9", "--tracing", "file:/t", "127.0.0.1:4000"]) == "127.0.0.1:4000"


def test_missing_virtualenv_is_explained(tmp_path: Path) -> None:
    options = struct({"virtualenv": ".venv"})
    info = language_pb2.ProgramInfo(root_directory=str(tmp_path), options=options)
    with pytest.raises(VirtualenvMissing, match="make up"):
        python_for(info)


def test_no_virtualenv_option_means_this_interpreter() -> None:
    import sys

    assert python_for(language_pb2.ProgramInfo(root_directory="/")) == sys.executable


def test_program_traceback_starts_at_the_program(tmp_path: Path) -> None:
    import runpy

    program = tmp_path / "__main__.py"
    program.write_text("def boom():\n    1 / 0\nboom()\n")
    try:
        runpy.run_path(str(tmp_path), run_name="__main__")
    except ZeroDivisionError as exn:
        text = program_traceback(exn)
    assert "test_toolchain.py" not in text and "runpy" not in text
    assert str(program) in text and "ZeroDivisionError" in text


def test_summary_wording(tmp_path: Path) -> None:
    assert describe_changes({"same": 3, "create": 2, "refresh": 1}) == "2 created, 3 unchanged, 1 refresh"
    assert describe_changes({}) == "nothing"
    (tmp_path / "1-manifest").mkdir()
    (tmp_path / "1-manifest" / "a.yaml").write_text("")
    assert describe_manifests(tmp_path) == f"1 file in {tmp_path}/ (1-manifest: 1)"


def test_summary_names_pods_that_cannot_be_scheduled() -> None:
    pending = {"status": {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are available"}]}}
    running = {"status": {"phase": "Running"}}
    assert describe_pods([running, pending]) == (
        "2 pods: 1 Pending, 1 Running (2 Insufficient nvidia.com/gpu)")
    assert describe_pods([]) == "no pods"


def test_render_config_points_every_onprem_cluster_at_a_folder() -> None:
    config = {"config": {"llmplane:clusters": [
        {"name": "lab", "cloud": "onprem", "kubeconfigFile": ".state/cluster/kubeconfig"},
        {"name": "edge", "cloud": "onprem", "kubeconfigSecret": "edgeKubeconfig"},
        {"name": "aws-use1", "cloud": "aws"}]}}
    clusters = render_config(config, "build/local")["config"]["llmplane:clusters"]
    assert clusters == [{"name": "lab", "cloud": "onprem", "renderDir": "build/local/lab"},
                        {"name": "edge", "cloud": "onprem", "renderDir": "build/local/edge"},
                        {"name": "aws-use1", "cloud": "aws"}]


def test_go_tools_are_cached_outside_the_clone_keyed_by_version(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("LLMPLANE_CACHE", str(tmp_path))
    tool = gotools.TOOLS["kube-apiserver"]
    assert tool.cached == tmp_path / "kube-apiserver" / gotools.K8S_VERSION / "kube-apiserver"
    assert gotools.TOOLS["pulumi-resource-kubernetes"].version == "4.25.0"


def test_the_python_sdks_match_the_go_builds() -> None:
    from importlib.metadata import version

    assert version("pulumi-kubernetes") == gotools.KUBERNETES_PROVIDER_VERSION
