"""Assemble the Pulumi toolchain, offline and idempotently.

- `pulumi`: the one on PATH if there is one, else built once from the wrapper
  module in toolchain/go/pulumi-cli (toolchain/gotools.py caches it by version
  outside the clone) and linked into `.tools/bin`.
- `pulumi-language-python`: a real one when installed (next to the CLI or on
  PATH), else a launcher for our Python language host: the Go module proxy
  refuses every version of Pulumi's own.
- the official Kubernetes provider, v4.25.0: installed as a plugin from the
  cached build unless that version is installed already.

Run as `python -m llmplane.toolchain.bootstrap` with the project's virtualenv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from llmplane.toolchain import gotools

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "bin"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
LAUNCHER_MARK = "# llmplane offline toolchain launcher"


def say(message: str) -> None:
    print(f"bootstrap: {message}", flush=True)


def on_path(name: str) -> Path | None:
    """`name` on PATH, ignoring .tools/bin (that is what we manage)."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() != TOOLS_BIN.resolve()]
    found = shutil.which(name, path=os.pathsep.join(dirs))
    return Path(found) if found else None


def is_launcher(path: Path) -> bool:
    try:
        return LAUNCHER_MARK in path.read_text(errors="ignore")[:200]
    except (OSError, UnicodeDecodeError):
        return False


def link(target: Path, name: str) -> Path:
    """.tools/bin/<name> pointing at target (the Makefile puts .tools/bin first on PATH)."""
    path = TOOLS_BIN / name
    if path.is_symlink() or path.exists():
        if path.is_symlink() and path.resolve() == target.resolve():
            return path
        path.unlink()
    path.symlink_to(target)
    return path


def ensure_cli() -> tuple[Path, str]:
    external = on_path("pulumi")
    managed = TOOLS_BIN / "pulumi"
    if external:
        if managed.is_symlink() or managed.exists():  # it would shadow the one on PATH
            managed.unlink()
        return external, "found on PATH"
    tool = gotools.TOOLS["pulumi"]
    return link(gotools.build(tool), "pulumi"), f"built from toolchain/go/pulumi-cli, v{tool.version} ({tool.cached})"


def write_launcher(path: Path, module: str) -> None:
    if not VENV_PYTHON.exists():
        sys.exit(f"bootstrap: {VENV_PYTHON} is missing; run `make up` (it creates the virtualenv)")
    text = f'#!/bin/sh\n{LAUNCHER_MARK} (toolchain/bootstrap.py)\nexec "{VENV_PYTHON}" -m {module} "$@"\n'
    if path.is_symlink():
        path.unlink()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    path.chmod(0o755)


def ensure_language_host(cli: Path) -> str:
    name = "pulumi-language-python"
    launcher = TOOLS_BIN / name
    for candidate in (cli.resolve().parent / name, on_path(name)):
        if candidate and candidate.exists() and not is_launcher(candidate):
            if launcher.exists() and is_launcher(launcher):
                launcher.unlink()
            return f"{candidate} (real plugin)"
    write_launcher(launcher, "llmplane.toolchain.language_host")
    return f"{launcher.relative_to(ROOT)} -> toolchain/language_host.py"


def installed_plugin_versions(cli: Path, name: str) -> list[str]:
    listed = subprocess.run([str(cli), "plugin", "ls", "--json"], capture_output=True, text=True, check=False)
    if listed.returncode != 0 or not listed.stdout.strip():
        return []
    return [str(p.get("version", "")).lstrip("v") for p in json.loads(listed.stdout)
            if p.get("name") == name and p.get("kind") == "resource"]


def ensure_kubernetes_provider(cli: Path) -> str:
    tool = gotools.TOOLS["pulumi-resource-kubernetes"]
    stale = TOOLS_BIN / tool.name
    if stale.exists() and is_launcher(stale):  # the render-only stand-in of earlier versions
        stale.unlink()
    if tool.version in installed_plugin_versions(cli, "kubernetes"):
        return f"installed plugin v{tool.version}"
    binary = gotools.build(tool)
    say(f"installing the Kubernetes provider v{tool.version} as a Pulumi plugin from {binary}")
    done = subprocess.run([str(cli), "plugin", "install", "resource", "kubernetes", f"v{tool.version}",
                           "--file", str(binary)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bootstrap: `pulumi plugin install` of the Kubernetes provider failed:\n{done.stderr.strip()}")
    return f"installed plugin v{tool.version} (built from the Go module proxy)"


def main() -> None:
    TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    # The two long builds of a first run, side by side (each is found, not rebuilt, afterwards).
    gotools.build_many([name for name in ("pulumi", "pulumi-resource-kubernetes")
                        if not (name == "pulumi" and on_path("pulumi"))])
    cli, cli_origin = ensure_cli()
    used = {
        "pulumi": f"{cli} ({cli_origin})",
        "pulumi-language-python": ensure_language_host(cli),
        "pulumi-resource-kubernetes": ensure_kubernetes_provider(cli),
    }
    say("toolchain ready:")
    for name, where in used.items():
        print(f"  {name:<28} {where}")


if __name__ == "__main__":
    main()
