"""Every external tool `make up` and `make test` run, who installs it, and the one set-up that installs them.

`make up` and `make test` both call this module, with their own target, so neither can drift from the other:
a tool either appears here with the targets that need it, or nothing installs it. It checks first (can each
missing tool be had on this machine: apt-get and root for Debian's packages, Go for the builds, npm for the
grammar), says what lies ahead with the time it takes on a 2-core machine, then installs: the short installs
before the long builds, and the Go builds one after another in an order where each reuses the build cache of the
one before (keda then keda-adapter, the Kubernetes binaries together).

    python -m llmplane.toolchain.prerequisites install up     # what `make up` runs (the local stack)
    python -m llmplane.toolchain.prerequisites install test   # what `make test` runs (a superset of up)
    python -m llmplane.toolchain.prerequisites list           # every tool, its targets and whether it is here
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from llmplane.facts.engines import RELEASES  # facts imports nothing ours and no third-party package
from llmplane.toolchain import checkov, gotools, vllm_source

ROOT = Path(__file__).resolve().parent.parent
LEZER_LOGQL_VERSION = "0.4.2"
"""Grafana's LogQL grammar from npm, which the tests parse every shipped query with."""
UP = "up"
TEST = "test"
TARGETS = (UP, TEST)


class PrerequisiteError(RuntimeError):
    """A tool cannot be had on this machine; the message names it and the command that provides it."""


@dataclass(frozen=True)
class Tool:
    """One external program, and how the set-up gets it.

    kind: `debian` (a package from apt-get, found on PATH), `go` (built by toolchain/gotools.py), `npm`,
    `sdist` (source distributions read as text, never run: toolchain/vllm_source.py) or `pip` (a virtualenv of its
    own).
    targets: the make targets whose runs start or read it; `test` includes everything `up` needs, since the
    tests run the local stack too.
    expected_s: how long getting it takes on a bare 2-core machine (measured by benchmarks/bare_machine.sh),
    printed before the work starts.
    """

    name: str
    kind: str
    package: str
    targets: frozenset[str]
    expected_s: int = 5

    def provides_command(self) -> str:
        return {
            "debian": f"apt-get install {self.package}",
            "go": f"python -m llmplane.toolchain.gotools build {self.name}",
            "npm": f"npm install {self.package}",
            "sdist": "python -m llmplane.toolchain.vllm_source fetch",
            "pip": f"python -m llmplane.toolchain.checkov ({self.package})",
        }[self.kind]


def _go(name: str, targets: Iterable[str], expected_s: int) -> Tool:
    tool = gotools.TOOLS[name]
    return Tool(name, "go", f"{tool.package} v{tool.version}", frozenset(targets), expected_s)


BOTH = (UP, TEST)

# Go builds in the order they run: each group shares most packages, so the second of a group reuses the first's
# compiled packages from Go's build cache (kube-scheduler took 9 s right after kube-apiserver).
TOOLS: tuple[Tool, ...] = (
    Tool("prometheus", "debian", "prometheus", frozenset(BOTH), 40),
    Tool("promtool", "debian", "prometheus", frozenset((TEST,)), 0),
    Tool("prometheus-alertmanager", "debian", "prometheus-alertmanager", frozenset((TEST,)), 10),
    Tool("lua5.4", "debian", "lua5.4", frozenset((TEST,)), 5),
    Tool("node", "debian", "nodejs", frozenset((TEST,)), 20),
    Tool("npm", "debian", "npm", frozenset((TEST,)), 20),
    Tool("lezer-logql", "npm", "@grafana/lezer-logql", frozenset((TEST,)), 10),
    Tool("vllm-sources", "sdist", f"vllm {', '.join(RELEASES)}", frozenset((TEST,)), 20),
    Tool("checkov", "pip", f"checkov=={checkov.VERSION}", frozenset((TEST,)), 60),
    _go("pulumi", BOTH, 341),
    _go("pulumi-resource-kubernetes", BOTH, 478),
    _go("kube-apiserver", BOTH, 303),
    _go("kube-controller-manager", BOTH, 111),
    _go("kube-scheduler", BOTH, 9),
    _go("kubectl", BOTH, 18),
    _go("etcd", BOTH, 23),
    _go("kwok", BOTH, 137),
    _go("keda", BOTH, 472),
    _go("keda-adapter", BOTH, 68),
    _go("victoria-logs", (TEST,), 13),
    _go("actionlint", (TEST,), 4),
    _go("epp", (TEST,), 108),
    _go("epp-probe", (TEST,), 8),
    _go("envoy-gateway", (TEST,), 365),
    _go("xds-probe", (TEST,), 3),
    _go("cert-manager-controller", (TEST,), 200),
    _go("keda-http-interceptor", (TEST,), 124),
    _go("keda-http-scaler", (TEST,), 11),
)
BY_NAME = {tool.name: tool for tool in TOOLS}
VENV_EXPECTED_S = 120


def needed(target: str) -> list[Tool]:
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: use one of {', '.join(TARGETS)}")
    return [tool for tool in TOOLS if target in tool.targets]


# --- where each kind of tool is found ---------------------------------------------------------------------------

def lezer_logql_dir() -> Path:
    return gotools.cache_root() / "npm" / f"lezer-logql-{LEZER_LOGQL_VERSION}"


def locate(tool: Tool, path: str | None = None) -> Path | None:
    """Where the tool is on this machine, or None. `path` replaces $PATH for Debian's tools."""
    if tool.kind == "debian":
        found = shutil.which(tool.name, path=path if path is not None else os.environ.get("PATH", ""))
        return Path(found) if found else None
    if tool.kind == "go":
        return gotools.TOOLS[tool.name].path()
    if tool.kind == "npm":
        found = lezer_logql_dir() / "node_modules" / "@grafana" / "lezer-logql"
        return found if found.is_dir() else None
    if tool.kind == "sdist":
        roots = [vllm_source.source_root(version) for version in RELEASES]
        return None if None in roots else roots[-1]
    if tool.kind == "pip":
        return checkov.path() if checkov.path().exists() else None
    raise ValueError(f"tool {tool.name}: unknown kind {tool.kind!r}")


def binary(name: str) -> Path:
    """The path of a Debian tool the local stack launches, or an error naming the command that installs it."""
    tool = BY_NAME[name]
    found = locate(tool)
    if found is None:
        target = "make up" if UP in tool.targets else "make test-setup"
        raise FileNotFoundError(f"{name} is not installed: run `{target}` ({tool.provides_command()})")
    return found


def missing(target: str, path: str | None = None) -> list[Tool]:
    return [tool for tool in needed(target) if locate(tool, path) is None]


# --- check first ------------------------------------------------------------------------------------------------

GO_TARBALL = Path("/usr/local/go/bin/go")
"""Where Go's official tarball installs, which not every shell puts on PATH."""


def _is_root() -> bool:
    return os.geteuid() == 0


def check(tools: list[Tool], which: Callable[[str], str | None] = shutil.which, root: bool | None = None) -> None:
    """Raise, naming each tool and what provides it, when a missing tool cannot be had here. Runs before any
    install or build, so a machine that lacks apt-get or Go says so in seconds, not after the long builds."""
    root = _is_root() if root is None else root
    problems: list[str] = []
    debian = [t for t in tools if t.kind == "debian"]
    if debian and not which("apt-get"):
        problems += [f"{t.name}: this machine has no apt-get; install it with your package manager "
                     f"(Debian: {t.provides_command()})" for t in debian]
    elif debian and not root and not which("sudo"):
        problems += [f"{t.name}: installing it needs root; run `sudo {t.provides_command()}` and run again"
                     for t in debian]
    if any(t.kind == "go" for t in tools) and not (which("go") or GO_TARBALL.exists()):
        problems += [f"{t.name}: building it needs Go >= 1.26 (https://go.dev/doc/install), then "
                     f"`{t.provides_command()}`" for t in tools if t.kind == "go"]
    npm_coming = any(t.name == "npm" for t in debian)
    if any(t.kind == "npm" for t in tools) and not (which("npm") or npm_coming):
        problems.append("lezer-logql: needs npm (apt-get install npm)")
    if problems:
        raise PrerequisiteError("cannot install what this target runs:\n  " + "\n  ".join(problems))


def announce(target: str, tools: list[Tool], venv: bool = False) -> str:
    """The first line of a set-up: the work ahead and how long it takes on a 2-core machine."""
    if not tools and not venv:
        return f"{target}: every tool is here ({len(needed(target))} checked)"
    total = sum(t.expected_s for t in tools) + (VENV_EXPECTED_S if venv else 0)
    builds = [t.name for t in tools if t.kind == "go"]
    others = [t.name for t in tools if t.kind != "go"]
    parts = ["the virtualenv (pip)"] if venv else []
    if builds:
        parts.append(f"{len(builds)} Go build(s) ({', '.join(builds)})")
    if others:
        parts.append(f"installs of {', '.join(others)}")
    return (f"{target}: {', '.join(parts)} ahead, about {_minutes(total)} on a 2-core machine "
            "(once; cached in ~/.cache/llmplane for every clone)")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


# --- then install -----------------------------------------------------------------------------------------------

def say(message: str) -> None:
    print(f"setup: {message}", flush=True)


def _as_root(argv: list[str]) -> list[str]:
    return argv if _is_root() else ["sudo", *argv]


def install_debian(packages: list[str]) -> None:
    packages = sorted(set(packages))
    say(f"apt-get install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # The packages' postinst would start system services (Prometheus on :9090); policy-rc.d's 101 stops that.
    policy = Path("/usr/sbin/policy-rc.d")
    created = False
    if not policy.exists():
        subprocess.run(_as_root(["sh", "-c", f"printf '#!/bin/sh\\nexit 101\\n' > {policy} && chmod +x {policy}"]),
                       check=True)
        created = True
    try:
        subprocess.run(_as_root(["apt-get", "update", "-qq"]), check=True, env=env)
        subprocess.run(_as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]),
                       check=True, env=env, stdout=subprocess.DEVNULL)
    finally:
        if created:
            subprocess.run(_as_root(["rm", "-f", str(policy)]), check=True)


def install_lezer_logql() -> None:
    folder = lezer_logql_dir()
    folder.mkdir(parents=True, exist_ok=True)
    say(f"npm install @grafana/lezer-logql@{LEZER_LOGQL_VERSION} into {folder}")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                    f"@grafana/lezer-logql@{LEZER_LOGQL_VERSION}"], cwd=folder, check=True)


def install_vllm_sources() -> None:
    for version in RELEASES:
        say(f"vLLM {version}'s source from PyPI (verified by its sha256, read by the tests) into "
            f"{vllm_source.release_dir(version)}")
        vllm_source.fetch(version)


def install(target: str) -> None:
    started = time.monotonic()
    todo = missing(target)
    check(todo)
    say(announce(target, todo))
    debian = [t.package for t in todo if t.kind == "debian"]
    if debian:
        install_debian(debian)
    for tool in todo:
        if tool.kind == "npm":
            install_lezer_logql()
        elif tool.kind == "sdist":
            install_vllm_sources()
        elif tool.kind == "pip":
            checkov.install()
        elif tool.kind == "go":
            gotools.build(gotools.TOOLS[tool.name])
    still = missing(target)
    if still:
        raise PrerequisiteError("installed but still not found: " + ", ".join(
            f"{t.name} ({t.provides_command()})" for t in still))
    if todo:
        say(f"{target}: {len(todo)} tool(s) installed in {_minutes(time.monotonic() - started)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmplane.toolchain.prerequisites",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    install_cmd = sub.add_parser("install", help="check, then install what a target runs")
    install_cmd.add_argument("target", choices=TARGETS)
    announce_cmd = sub.add_parser("announce", help="say what the set-up of a target has ahead, install nothing")
    announce_cmd.add_argument("target", choices=TARGETS)
    sub.add_parser("list", help="every tool, its targets and where it is")
    args = parser.parse_args(argv)
    if args.command == "announce":
        say(announce(args.target, missing(args.target), venv=not (ROOT / ".venv" / "bin" / "python").exists()))
        return
    if args.command == "list":
        for tool in TOOLS:
            print(f"  {tool.name:<28} {tool.kind:<7} {'+'.join(sorted(tool.targets)):<8} {locate(tool) or 'missing'}")
        return
    try:
        install(args.target)
    except (PrerequisiteError, subprocess.CalledProcessError, RuntimeError) as exc:
        sys.exit(f"setup: {exc}")


if __name__ == "__main__":
    main()
