"""Assemble the Pulumi toolchain in `.tools/bin`, offline and idempotently.

- `pulumi`: the one on PATH if there is one, else built once from the
  wrapper module in toolchain/pulumi-cli (rebuilt when its pin changes).
- `pulumi-language-python`, `pulumi-resource-kubernetes`: the real plugins
  when installed, else launchers for our Python stand-ins. A launcher left
  from an earlier run is removed once a real plugin appears, because PATH
  plugins win over installed ones in the engine's lookup.

Run as `python -m toolchain.bootstrap` with the project's virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"
TOOLS_BIN = TOOLS / "bin"
CLI_MODULE = ROOT / "toolchain" / "pulumi-cli"
CLI_STAMP = TOOLS / "pulumi-cli.stamp"
BUILD_LOG = TOOLS / "build-pulumi-cli.log"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
LAUNCHER_MARK = "# llmplane offline toolchain launcher"
PROGRESS_EVERY_S = 30


def say(message: str) -> None:
    print(f"bootstrap: {message}", flush=True)


def pinned_cli_version() -> str:
    """The pulumi/pkg version the wrapper module requires, e.g. '3.259.0'."""
    match = re.search(r"github\.com/pulumi/pulumi/pkg/v3 v(\S+)", (CLI_MODULE / "go.mod").read_text())
    if not match:
        sys.exit(f"bootstrap: no github.com/pulumi/pulumi/pkg/v3 requirement in {CLI_MODULE}/go.mod")
    return match.group(1)


def on_path(name: str) -> Path | None:
    """`name` on PATH, ignoring .tools/bin (that is what we manage)."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() != TOOLS_BIN.resolve()]
    found = shutil.which(name, path=os.pathsep.join(dirs))
    return Path(found) if found else None


def is_launcher(path: Path) -> bool:
    try:
        return LAUNCHER_MARK in path.read_text(errors="ignore")[:200]
    except OSError:
        return False


def build_cli(version: str, target: Path) -> None:
    """`go build` the CLI, printing a line every PROGRESS_EVERY_S seconds."""
    if not shutil.which("go"):
        sys.exit("bootstrap: `pulumi` is not on PATH and Go is not installed to build it; "
                 "install Go (see toolchain/pulumi-cli/go.mod for the version) or Pulumi itself")
    say(f"building the Pulumi CLI v{version} from the Go module proxy (first time only, several minutes)")
    say(f"full log: {BUILD_LOG.relative_to(ROOT)}")
    partial = target.with_suffix(".partial")
    ldflags = f"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v{version}"
    cmd = ["go", "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(partial),
           "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"]
    started = time.monotonic()
    compiled = 0
    with BUILD_LOG.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=CLI_MODULE, stdout=log, stderr=subprocess.PIPE, text=True)

        def count_packages() -> None:
            nonlocal compiled
            for line in proc.stderr:  # `go build -v` names each package it compiles
                log.write(line)
                compiled += 1

        reader = threading.Thread(target=count_packages, daemon=True)
        reader.start()
        while True:
            try:
                proc.wait(timeout=PROGRESS_EVERY_S)
                break
            except subprocess.TimeoutExpired:
                say(f"  still building ({time.monotonic() - started:.0f} s, {compiled} packages compiled)")
        reader.join()
    if proc.returncode != 0:
        tail = BUILD_LOG.read_text().splitlines()[-30:]
        sys.exit("bootstrap: building the Pulumi CLI failed:\n" + "\n".join(tail))
    partial.replace(target)
    CLI_STAMP.write_text(version + "\n")
    say(f"built {target.relative_to(ROOT)} in {time.monotonic() - started:.0f} s")


def ensure_cli() -> tuple[Path, str]:
    version = pinned_cli_version()
    external = on_path("pulumi")
    target = TOOLS_BIN / "pulumi"
    if external:
        # .tools/bin comes first on PATH in the Makefile: an old build would shadow it.
        if target.exists():
            say(f"removing {target.relative_to(ROOT)}: using {external} instead")
            target.unlink()
            CLI_STAMP.unlink(missing_ok=True)
        return external, "found on PATH"
    if not built_at(target, version):
        build_cli(version, target)
    return target, f"built from toolchain/pulumi-cli, v{version}"


def built_at(target: Path, version: str) -> bool:
    """Whether target is our build of `version`: per the stamp, or (a build
    made without the stamp) per the binary itself."""
    if not target.exists():
        return False
    if CLI_STAMP.exists() and CLI_STAMP.read_text().strip() == version:
        return True
    reported = subprocess.run([str(target), "version"], capture_output=True, text=True, check=False)
    if reported.stdout.strip() != f"v{version}":
        return False
    CLI_STAMP.write_text(version + "\n")
    return True


def write_launcher(path: Path, module: str) -> None:
    if not VENV_PYTHON.exists():
        sys.exit(f"bootstrap: {VENV_PYTHON} is missing; run `make up` (it creates the virtualenv)")
    text = f'#!/bin/sh\n{LAUNCHER_MARK} (toolchain/bootstrap.py)\nexec "{VENV_PYTHON}" -m {module} "$@"\n'
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    path.chmod(0o755)


def remove_launcher(path: Path) -> None:
    if path.exists() and is_launcher(path):
        path.unlink()


def real_language_host(cli: Path) -> Path | None:
    name = "pulumi-language-python"
    for candidate in (cli.resolve().parent / name, on_path(name)):
        if candidate and candidate.exists() and not is_launcher(candidate):
            return candidate
    return None


def real_kubernetes_plugin(cli: Path) -> str | None:
    """Where a real kubernetes provider is: installed (`pulumi plugin ls`) or on PATH."""
    listed = subprocess.run([str(cli), "plugin", "ls", "--json"], capture_output=True, text=True, check=False)
    if listed.returncode == 0 and listed.stdout.strip():
        for plugin in json.loads(listed.stdout):
            if plugin.get("name") == "kubernetes" and plugin.get("kind") == "resource":
                return f"installed plugin v{plugin.get('version')}"
    found = on_path("pulumi-resource-kubernetes")
    return str(found) if found and not is_launcher(found) else None


def ensure_plugin(name: str, module: str, real: str | Path | None, what: str) -> str:
    launcher = TOOLS_BIN / name
    if real:
        remove_launcher(launcher)
        return f"{real} (real plugin)"
    write_launcher(launcher, module)
    return f"{launcher.relative_to(ROOT)} -> {what}"


def main() -> None:
    TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    cli, cli_origin = ensure_cli()
    used = {
        "pulumi": f"{cli} ({cli_origin})",
        "pulumi-language-python": ensure_plugin(
            "pulumi-language-python", "toolchain.language_host", real_language_host(cli),
            "toolchain/language_host.py"),
        "pulumi-resource-kubernetes": ensure_plugin(
            "pulumi-resource-kubernetes", "toolchain.k8s_render_provider", real_kubernetes_plugin(cli),
            "toolchain/k8s_render_provider.py (render to YAML only)"),
    }
    say("toolchain ready:")
    for name, where in used.items():
        print(f"  {name:<28} {where}")


if __name__ == "__main__":
    main()
