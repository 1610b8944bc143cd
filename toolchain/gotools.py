"""Go programs the project builds from the Go module proxy, cached by version.

The machines reach the Go module proxy but no download site, so every Go tool
(the Pulumi CLI, the official Kubernetes provider, the embedded cluster's
control plane, KWOK, KEDA, VictoriaLogs, actionlint) is built from its module
once and kept under `~/.cache/llmplane/<tool>/<version>/` (override with
LLMPLANE_CACHE), outside any clone, so a fresh clone and CI reuse it. A binary
of the same name already on PATH is preferred where the tool allows it.

    python -m llmplane.toolchain.gotools build etcd kwok     # build (or find) these
    python -m llmplane.toolchain.gotools path kube-apiserver # print where it is
    python -m llmplane.toolchain.gotools list                # every tool and its state

Builds print a progress line every 30 s and run one at a time: each `go build`
uses both cores already, and a build that follows another of the same module
(keda-adapter after keda, kube-scheduler after kube-apiserver) reuses its
compiled packages from Go's build cache, where two side by side compile them
twice (keda and keda-adapter side by side took 1,187 s and 1,289 s).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from llmplane.facts.images import CERT_MANAGER_VERSION, ENVOY_GATEWAY_VERSION
from llmplane.toolchain import releases

ROOT = Path(__file__).resolve().parent.parent
WRAPPERS = ROOT / "toolchain" / "go"
PROGRESS_EVERY_S = 30
PARALLEL_BUILDS = 1


def cache_root() -> Path:
    return Path(os.environ.get("LLMPLANE_CACHE", Path.home() / ".cache" / "llmplane"))


def say(message: str) -> None:
    print(f"gotools: {message}", flush=True)


@dataclass(frozen=True)
class GoTool:
    """One binary built from a Go module.

    `module_dir` is a wrapper module under toolchain/go (whose go.mod/go.sum
    pin every dependency) or None for a plain `go install package@version`.
    """

    name: str
    version: str
    package: str
    module_dir: str | None = None
    ldflags: tuple[str, ...] = ()
    tags: str = ""
    cgo: bool = False
    prefer_path: bool = True
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cached(self) -> Path:
        return cache_root() / self.name / self.version / self.name

    def on_path(self) -> Path | None:
        if not self.prefer_path:
            return None
        found = shutil.which(self.name)
        if found and cache_root() not in Path(found).resolve().parents:
            return Path(found)
        return None

    def path(self) -> Path | None:
        """Where a usable binary is, without building."""
        external = self.on_path()
        if external:
            return external
        return self.cached if self.cached.exists() else None


def _source_digest(module_dir: str) -> str:
    """A version for a tool whose source is ours: the digest of its wrapper's files, so an edit rebuilds it."""
    digest = hashlib.sha256()
    for path in sorted((WRAPPERS / module_dir).iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


K8S_VERSION = "1.37.2"
_K8S_LDFLAGS = (
    f"-X k8s.io/component-base/version.gitVersion=v{K8S_VERSION}",
    "-X k8s.io/component-base/version.gitMajor=1",
    f"-X k8s.io/component-base/version.gitMinor={K8S_VERSION.split('.')[1]}",
    "-X k8s.io/component-base/version.gitTreeState=clean",
    f"-X k8s.io/client-go/pkg/version.gitVersion=v{K8S_VERSION}",
    "-X k8s.io/client-go/pkg/version.gitMajor=1",
    f"-X k8s.io/client-go/pkg/version.gitMinor={K8S_VERSION.split('.')[1]}",
)


def _k8s(binary: str) -> GoTool:
    return GoTool(binary, K8S_VERSION, f"k8s.io/kubernetes/cmd/{binary}", module_dir="kubernetes",
                  ldflags=_K8S_LDFLAGS, tags="selinux,notest")


PULUMI_VERSION = "3.276.0"
KUBERNETES_PROVIDER_VERSION = "4.25.0"
KEDA_VERSION = "2.21.0"
KEDA_HTTP_ADDON_VERSION = "0.15.0"
"""KEDA's HTTP add-on (interceptor and external scaler), at the chart's appVersion
(components.autoscaling.scale_from_zero.KEDA_HTTP_ADDON)."""

TOOLS: dict[str, GoTool] = {tool.name: tool for tool in (
    GoTool("pulumi", PULUMI_VERSION, "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi", module_dir="pulumi-cli",
           ldflags=(f"-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v{PULUMI_VERSION}",)),
    GoTool("pulumi-resource-kubernetes", KUBERNETES_PROVIDER_VERSION, ".", module_dir="kubernetes-provider",
           ldflags=("-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version="
                    f"{KUBERNETES_PROVIDER_VERSION}",)),
    # Debian's etcd (3.4) is too old for kube-apiserver 1.37 (watch progress off, watches restart with backoff):
    # only our build is used.
    GoTool("etcd", "3.7.3", "go.etcd.io/etcd/server/v3", module_dir="etcd", prefer_path=False),
    _k8s("kube-apiserver"),
    _k8s("kube-controller-manager"),
    _k8s("kube-scheduler"),
    # kubectl is built too, not taken from PATH: an older client than the
    # server (Debian ships 1.32) is outside Kubernetes' version-skew policy.
    GoTool("kubectl", K8S_VERSION, "k8s.io/kubernetes/cmd/kubectl", module_dir="kubernetes",
           ldflags=_K8S_LDFLAGS, tags="selinux,notest", prefer_path=False),
    GoTool("kwok", "0.8.0", "sigs.k8s.io/kwok/cmd/kwok@v0.8.0"),
    GoTool("keda", KEDA_VERSION, "github.com/kedacore/keda/v2/cmd/operator", module_dir="keda"),
    GoTool("keda-adapter", KEDA_VERSION, "github.com/kedacore/keda/v2/cmd/adapter", module_dir="keda"),
    # The HTTP add-on's interceptor and external scaler: the tests hold a request at zero replicas through them.
    GoTool("keda-http-interceptor", KEDA_HTTP_ADDON_VERSION, "github.com/kedacore/http-add-on/interceptor",
           module_dir="keda-http-addon"),
    GoTool("keda-http-scaler", KEDA_HTTP_ADDON_VERSION, "github.com/kedacore/http-add-on/scaler",
           module_dir="keda-http-addon"),
    GoTool("victoria-logs", "1.52.2", "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.2"),
    GoTool("actionlint", "1.7.10", "github.com/rhysd/actionlint/cmd/actionlint@v1.7.10"),
    # The Inference Extension's own endpoint picker with the prefix-cache scorer (its later modules ship only a
    # round-robin picker; the llm-d router clusters run is not on the module proxy), and our ext_proc client.
    GoTool("epp", "1.3.0", "sigs.k8s.io/gateway-api-inference-extension/cmd/epp@v1.3.0"),
    GoTool("epp-probe", _source_digest("epp-probe"), ".", module_dir="epp-probe"),
    # Envoy Gateway's controller at the chart's version: the tests run it on the embedded cluster and read back
    # the statuses it writes (Envoy itself has no build on any registry this project reaches).
    GoTool("envoy-gateway", ENVOY_GATEWAY_VERSION,
           f"github.com/envoyproxy/gateway/cmd/envoy-gateway@v{ENVOY_GATEWAY_VERSION}"),
    # Our xDS reader for what that controller publishes, on the go-control-plane it is built with.
    GoTool("xds-probe", _source_digest("xds-probe"), ".", module_dir="xds-probe"),
    # cert-manager's controllers at the chart's version, run by our runner (its main.go: upstream's binary module
    # is not on the proxy); the version carries the runner's digest so an edit rebuilds it.
    GoTool("cert-manager-controller", f"{CERT_MANAGER_VERSION}-{_source_digest('cert-manager-controller')}", ".",
           module_dir="cert-manager-controller"),
)}


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        sys.exit("gotools: Go is not installed; install Go >= 1.26 (https://go.dev/doc/install, "
                 "or `apt-get install golang-go` where Debian's is new enough) and run again")
    return go


def _prepare_provider_source(tool: GoTool, work: Path) -> Path:
    """The provider's main package embeds a versioned schema its module zip
    lacks: copy the package beside the wrapper's go.mod and generate it."""
    go = _go()
    wrapper = WRAPPERS / tool.module_dir
    src = work / "src"
    src.mkdir()
    for name in ("go.mod", "go.sum"):
        shutil.copy(wrapper / name, src / name)
    module = "github.com/pulumi/pulumi-kubernetes/provider/v4"
    listed = subprocess.run([go, "list", "-m", "-f", "{{.Dir}}", module], cwd=src, capture_output=True,
                            text=True, check=False)
    if listed.returncode != 0 or not listed.stdout.strip():
        subprocess.run([go, "mod", "download", module], cwd=src, check=True)
        listed = subprocess.run([go, "list", "-m", "-f", "{{.Dir}}", module], cwd=src, capture_output=True,
                                text=True, check=True)
    main_dir = Path(listed.stdout.strip()) / "cmd" / "pulumi-resource-kubernetes"
    for name in ("main.go", "generate.go", "schema.json", "terraform-mapping.json"):
        shutil.copy(main_dir / name, src / name)
        (src / name).chmod(0o644)
    subprocess.run([go, "run", "generate.go"], cwd=src, check=True,
                   env={**os.environ, "VERSION": tool.version})
    return src


def build(tool: GoTool) -> Path:
    """The tool's binary: on PATH, cached, or built now into the cache. Concurrent callers (two clones, two
    make targets) wait for one build instead of racing it."""
    found = tool.path()
    if found:
        return found
    tool.cached.parent.mkdir(parents=True, exist_ok=True)
    with (tool.cached.parent / ".lock").open("w") as lock:
        if not _try_lock(lock):
            say(f"{tool.name}: another process is building it; waiting")
            fcntl.flock(lock, fcntl.LOCK_EX)
        found = tool.path()
        return found if found else _download_or_build(tool)


def _download_or_build(tool: GoTool) -> Path:
    """The publisher's binary where one can be downloaded with a matching checksum (toolchain/releases.py), else
    a build from the Go module proxy."""
    release = releases.releases({name: t.version for name, t in TOOLS.items()}).get(tool.name)
    if release:
        tool.cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            if releases.take(release, tool.cached):
                say(f"{tool.name}: took the released binary {release.url} (SHA-256 as its publisher lists)")
                return tool.cached
        except releases.DownloadRefused as refused:
            say(f"{tool.name}: {refused}; building it instead")
    return _build_locked(tool)


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _build_locked(tool: GoTool) -> Path:
    go = _go()
    target = tool.cached
    log_path = target.parent / "build.log"
    with tempfile.TemporaryDirectory(prefix=f"llmplane-build-{tool.name}-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "CGO_ENABLED": "1" if tool.cgo else "0", **tool.env}
        if tool.module_dir is None:
            env["GOBIN"] = str(work / "bin")
            cmd = [go, "install", "-v", "-trimpath"]
            cwd = work
        else:
            cmd = [go, "build", "-v", "-trimpath", "-o", str(target.with_suffix(".partial"))]
            cwd = WRAPPERS / tool.module_dir
            if tool.name == "pulumi-resource-kubernetes":
                cwd = _prepare_provider_source(tool, work)
        if tool.tags:
            cmd += ["-tags", tool.tags]
        cmd += ["-ldflags", " ".join(("-s", "-w") + tool.ldflags), tool.package]
        say(f"building {tool.name} v{tool.version} from the Go module proxy (log: {log_path})")
        _run_with_progress(tool.name, cmd, cwd, env, log_path)
        if tool.module_dir is None:
            built = next((work / "bin").iterdir())
            shutil.move(str(built), target.with_suffix(".partial"))
    target.with_suffix(".partial").replace(target)
    say(f"built {target}")
    return target


def _run_with_progress(name: str, cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> None:
    started = time.monotonic()
    compiled = 0
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.PIPE, text=True)

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
                say(f"  {name}: still building ({time.monotonic() - started:.0f} s, {compiled} packages)")
        reader.join()
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-25:])
        raise RuntimeError(f"building {name} failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}")
    say(f"  {name}: built in {time.monotonic() - started:.0f} s")


def build_many(names: list[str]) -> dict[str, Path]:
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        sys.exit(f"gotools: unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    results: dict[str, Path] = {}
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=PARALLEL_BUILDS) as pool:
        futures = {name: pool.submit(build, TOOLS[name]) for name in names}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                errors.append(str(exc))
    if errors:
        sys.exit("gotools: " + "\n".join(errors))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmplane.toolchain.gotools",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build (or find) tools")
    build_cmd.add_argument("tools", nargs="+")
    path_cmd = sub.add_parser("path", help="print a tool's binary, building it if needed")
    path_cmd.add_argument("tool")
    sub.add_parser("list", help="every tool, its version and where it is")
    args = parser.parse_args(argv)
    if args.command == "build":
        for name, where in build_many(args.tools).items():
            print(f"  {name:<28} {where}")
    elif args.command == "path":
        print(build_many([args.tool])[args.tool])
    else:
        for tool in TOOLS.values():
            print(f"  {tool.name:<28} v{tool.version:<8} {tool.path() or 'not built'}")


if __name__ == "__main__":
    main()
