"""One set-up for `make up` and `make test`: every external program is listed once with the targets that run
it, a fresh machine's `make up` installs what the local stack launches, and a tool that cannot be had is named
with the command that provides it before any long build starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from llmplane.toolchain import prerequisites
from llmplane.toolchain.prerequisites import TEST, UP, PrerequisiteError

ROOT = Path(__file__).resolve().parents[1]


def names(tools: list[prerequisites.Tool]) -> set[str]:
    return {tool.name for tool in tools}


def test_a_machine_without_prometheus_gets_it_from_make_up(tmp_path: Path) -> None:
    empty_path = str(tmp_path)  # a PATH with nothing on it: no prometheus, no promtool
    assert "prometheus" in names(prerequisites.missing(UP, path=empty_path))
    assert "prometheus" in names(prerequisites.missing(TEST, path=empty_path))


def test_make_up_installs_the_cluster_keda_and_the_pulumi_toolchain() -> None:
    assert {"pulumi", "pulumi-resource-kubernetes", "etcd", "kube-apiserver", "kube-controller-manager",
            "kube-scheduler", "kubectl", "kwok", "keda", "keda-adapter", "prometheus"} \
        <= names(prerequisites.needed(UP))


def test_make_test_installs_everything_make_up_does_and_what_only_the_tests_read() -> None:
    assert names(prerequisites.needed(UP)) < names(prerequisites.needed(TEST))
    assert {"promtool", "lua5.4", "victoria-logs", "epp", "vllm-sources", "checkov", "envoy-gateway",
            "xds-probe"} <= (
        names(prerequisites.needed(TEST)) - names(prerequisites.needed(UP)))


def test_builds_of_one_module_run_back_to_back() -> None:
    """Go's build cache serves the second of a pair only when nothing else compiles in between."""
    order = [tool.name for tool in prerequisites.TOOLS if tool.kind == "go"]
    assert order.index("keda-adapter") == order.index("keda") + 1
    kube = [order.index(n) for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")]
    assert kube == list(range(kube[0], kube[0] + 4))
    assert order.index("xds-probe") == order.index("envoy-gateway") + 1  # same go-control-plane, gRPC, protobuf
    from llmplane.toolchain import gotools

    assert gotools.PARALLEL_BUILDS == 1


def test_no_apt_get_is_said_before_anything_is_built() -> None:
    with pytest.raises(PrerequisiteError) as raised:
        prerequisites.check(prerequisites.needed(UP), which=lambda name: "/usr/bin/go" if name == "go" else None,
                            root=True)
    assert "prometheus: this machine has no apt-get" in str(raised.value)
    assert "apt-get install prometheus" in str(raised.value)


def test_no_go_names_every_build_and_where_go_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prerequisites, "GO_TARBALL", Path("/nonexistent/go"))
    with pytest.raises(PrerequisiteError) as raised:
        prerequisites.check(prerequisites.needed(UP), which=lambda name: "/usr/bin/apt-get" if name == "apt-get"
                            else None, root=True)
    message = str(raised.value)
    assert "kube-apiserver: building it needs Go >= 1.26" in message
    assert "python -m llmplane.toolchain.gotools build kube-apiserver" in message
    assert "prometheus" not in message


def test_not_root_and_no_sudo_says_which_command_to_run_as_root() -> None:
    with pytest.raises(PrerequisiteError, match=r"prometheus: installing it needs root; run `sudo apt-get install "
                                                r"prometheus`"):
        prerequisites.check([prerequisites.BY_NAME["prometheus"]],
                            which=lambda name: f"/usr/bin/{name}" if name == "apt-get" else None, root=False)


def test_everything_present_passes_the_check() -> None:
    prerequisites.check(prerequisites.needed(TEST), which=lambda name: f"/usr/bin/{name}", root=True)


def test_the_first_line_names_the_builds_ahead_and_their_time() -> None:
    tools = [prerequisites.BY_NAME[n] for n in ("prometheus", "kube-apiserver", "keda")]
    line = prerequisites.announce(UP, tools, venv=True)
    assert "2 Go build(s) (kube-apiserver, keda)" in line
    assert "installs of prometheus" in line and "the virtualenv" in line
    assert " min on a 2-core machine" in line
    assert prerequisites.announce(UP, []).endswith(f"every tool is here ({len(prerequisites.needed(UP))} checked)")


def test_a_missing_debian_tool_names_the_command_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FileNotFoundError, match=r"prometheus is not installed: run `make up` \(apt-get install "
                                                r"prometheus\)"):
        prerequisites.binary("prometheus")


def test_make_up_runs_the_up_set_up_and_make_test_the_test_one() -> None:
    up = subprocess.run(["make", "-n", "toolchain"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "-m llmplane.toolchain.prerequisites install up" in up
    test = subprocess.run(["make", "-n", "test-setup"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    assert "-m llmplane.toolchain.prerequisites install test" in test


def test_ci_runs_the_readmes_two_commands_in_order() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line in ("make up", "make test")]
    assert commands == ["make up", "make test"]
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make up ") < readme.index("make test ")


def test_every_go_tool_is_installed_by_one_of_the_targets():
    from llmplane.toolchain import gotools

    assert set(gotools.TOOLS) == {tool.name for tool in prerequisites.TOOLS if tool.kind == "go"}


def test_the_first_line_needs_no_package_the_virtualenv_would_bring():
    """`make up` says what lies ahead before it creates the virtualenv, with the machine's bare Python."""
    import sys

    done = subprocess.run([sys.executable, "-S", "-m", "llmplane.toolchain.prerequisites", "announce", "up"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("setup: up: ")
