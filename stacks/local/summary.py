"""The last lines of `make up` and `make render`: what the update changed, and where it really went.

`pulumi up` prints every resource; after a long run the facts a user wants
are buried. Changes come from the newest `pulumi stack history` entry; where
they went comes from the target itself: the cluster's API server (objects and
pods in the serving namespace, asked through kubectl) or the render folder.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

# Engine operation names as they appear in resourceChanges.
_WORDS = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
    "same": "unchanged",
}


def describe_changes(changes: dict[str, int]) -> str:
    ordered = [op for op in _WORDS if op in changes] + sorted(set(changes) - set(_WORDS))
    parts = [f"{changes[op]} {_WORDS.get(op, op)}" for op in ordered if changes[op]]
    return ", ".join(parts) or "nothing"


def latest_changes(stack: str) -> tuple[str, dict[str, int]]:
    """Result and resource changes of the stack's newest update."""
    listed = subprocess.run(
        ["pulumi", "stack", "history", "--stack", stack, "--json", "--page-size", "1"],
        capture_output=True, text=True, check=True,
    )
    history = json.loads(listed.stdout or "[]")
    if not history:
        return "none", {}
    newest = history[0]
    return newest.get("result", "unknown"), newest.get("resourceChanges") or {}


def describe_manifests(render_dir: Path) -> str:
    files = sorted(render_dir.rglob("*.yaml")) if render_dir.is_dir() else []
    if not files:
        return f"no manifests in {render_dir}"
    folders: dict[str, int] = {}
    for path in files:
        folder = path.parent.relative_to(render_dir).as_posix()
        folders[folder] = folders.get(folder, 0) + 1
    per_folder = ", ".join(f"{name}: {count}" for name, count in folders.items())
    noun = "file" if len(files) == 1 else "files"
    return f"{len(files)} {noun} in {render_dir}/ ({per_folder})"


def describe_pods(pods: list[dict]) -> str:
    """'2 pods: 1 Running, 1 Pending (Insufficient nvidia.com/gpu)'."""
    if not pods:
        return "no pods"
    phases: dict[str, int] = {}
    reasons: set[str] = set()
    for pod in pods:
        phase = pod.get("status", {}).get("phase", "Unknown")
        phases[phase] = phases.get(phase, 0) + 1
        for condition in pod.get("status", {}).get("conditions", []):
            if condition.get("reason") == "Unschedulable" and condition.get("message"):
                reasons.add(condition["message"].split(". ")[0].split(": ")[-1])
    text = ", ".join(f"{count} {phase}" for phase, count in sorted(phases.items()))
    noun = "pod" if len(pods) == 1 else "pods"
    return f"{len(pods)} {noun}: {text}" + (f" ({'; '.join(sorted(reasons))})" if reasons else "")


def describe_cluster(kubectl: str, kubeconfig: Path, namespace: str) -> str:
    def get(*args: str) -> dict:
        done = subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "get", *args, "-o", "json"],
                              capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip())
        return json.loads(done.stdout)

    try:
        server = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        pods = get("pods", "-n", namespace)["items"]
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        return f"the cluster of {kubeconfig} could not be asked: {error}"
    return f"{server} (kubeconfig {kubeconfig}), namespace {namespace}: {describe_pods(pods)}"


def _try_it_on_cluster(kubectl: str, kubeconfig: Path, namespace: str) -> str | None:
    from llmplane.stacks.local.cluster_addons import GATEWAY
    from llmplane.stacks.local.embedded_cluster import EmbeddedCluster

    listed = subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "get", "httproutes.gateway.networking.k8s.io",
                             "-n", namespace, "-o", "json"], capture_output=True, text=True, check=False, timeout=60)
    routes = json.loads(listed.stdout)["items"] if listed.returncode == 0 else []
    return try_it(routes, EmbeddedCluster(kubeconfig.parent).read_ports().get(GATEWAY))


def try_it(routes: list[dict], gateway_port: int | None) -> str | None:
    """One `curl` that asks the first model route for a completion through the local gateway, or None."""
    if gateway_port is None:
        return None
    for route in routes:
        model = route["metadata"].get("labels", {}).get("llmplane.dev/model")
        prefixes = [m["path"]["value"] for rule in route["spec"].get("rules", []) for m in rule.get("matches", [])
                    if m.get("path", {}).get("type") == "PathPrefix" and m["path"]["value"].endswith("/v1")]
        if model and prefixes and route["spec"].get("hostnames"):
            body = json.dumps({"model": model, "prompt": "Kubernetes is", "max_tokens": 16})
            return (f"curl -s http://127.0.0.1:{gateway_port}{prefixes[0]}/completions "
                    f"-H {shlex.quote('Host: ' + route['spec']['hostnames'][0])} "
                    f"-H 'Content-Type: application/json' -d {shlex.quote(body)}")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmplane.stacks.local.summary",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--render-dir", type=Path)
    target.add_argument("--kubeconfig", type=Path)
    parser.add_argument("--namespace", default="llmplane")
    args = parser.parse_args(argv)
    result, changes = latest_changes(args.stack)
    print(f"\nstack {args.stack}: last update {result}: {describe_changes(changes)}")
    if args.render_dir is not None:
        print(f"manifests: {describe_manifests(args.render_dir)}")
    else:
        from llmplane.toolchain import gotools

        kubectl = str(gotools.build(gotools.TOOLS["kubectl"]))
        print(f"deployed to: {describe_cluster(kubectl, args.kubeconfig, args.namespace)}")
        print(f"look around: {kubectl} --kubeconfig {args.kubeconfig} get pods -n {args.namespace}")
        command = _try_it_on_cluster(kubectl, args.kubeconfig, args.namespace)
        if command:
            print(f"try it: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
