"""The examples: llmplane's components used from Pulumi programs of their own, with no environment file.

Each example is a Pulumi project (examples/<name>/Pulumi.yaml) that another team could copy. Every one runs here
under Pulumi's mock runtime; the canary rollout, which needs nothing but a Kubernetes cluster, also runs through
the real engine against the embedded cluster.
"""

from __future__ import annotations

import ast
import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from llmplane.stacks.crd_sources import GATEWAY_API, crd_documents
from llmplane.stacks.plan import PlannedResource, record_program

from tests.engine import ROOT, engine_env, wait_for

EXAMPLES = ROOT / "examples"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "Pulumi.yaml").is_file())
API_KEY = "example-api-key-never-in-plain-text"
FAKE_KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


def example_config(name: str, **overrides: str) -> dict[str, str]:
    """The example's demo stack config (as the engine passes it: `<project>:<key>` → string), with overrides."""
    project = yaml.safe_load((EXAMPLES / name / "Pulumi.yaml").read_text())["name"]
    config = yaml.safe_load((EXAMPLES / name / "Pulumi.demo.yaml").read_text())["config"]
    values = {key: str(value) for key, value in config.items()}
    values.update({f"{project}:{key}": value for key, value in overrides.items()})
    return values


def run_example(name: str, tmp_path: Path, **overrides: str) -> list[PlannedResource]:
    """The example's program under mocks, with its demo config, a throwaway kubeconfig and the API key secret."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    project = yaml.safe_load((EXAMPLES / name / "Pulumi.yaml").read_text())["name"]
    values = example_config(name, kubeconfigPath=str(kubeconfig), apiKey=API_KEY, **overrides)
    main = EXAMPLES / name / "__main__.py"
    return record_program(lambda: runpy.run_path(str(main), run_name="__main__"), project, "demo", values,
                          [f"{project}:apiKey"])


def of_type(resources: list[PlannedResource], type_: str) -> list[PlannedResource]:
    return [r for r in resources if r.type == type_]


def custom(resources: list[PlannedResource], kind: str) -> list[PlannedResource]:
    return [r for r in resources if r.type.endswith(f":{kind}")]


@pytest.mark.parametrize("name", NAMES)
def test_an_example_imports_components_never_the_environment_layer(name: str) -> None:
    tree = ast.parse((EXAMPLES / name / "__main__.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert any(module.startswith("llmplane.components.") for module in imported)
    assert not [module for module in imported if module.startswith(("llmplane.stacks", "llmplane.spec"))]


def test_there_are_at_least_three_examples() -> None:
    assert {"eks-gpu-model", "canary-on-existing-cluster", "observability-only"} <= set(NAMES)


def test_importing_the_components_does_not_load_the_spec() -> None:
    """A team that uses a component gets no part of llmplane's environment layer, not even indirectly."""
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "components").rglob("*.py")
                     if p.name != "__init__.py" and "scripts" not in p.parts)
    probe = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
             "print(sorted(m for m in sys.modules if m == 'stacks' or m.startswith('stacks.')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_eks_example_makes_a_gpu_cluster_serving_one_model(tmp_path: Path) -> None:
    resources = run_example("eks-gpu-model", tmp_path)
    (eks,) = of_type(resources, "aws:eks/cluster:Cluster")
    assert eks.inputs["name"] == "inference"
    (pool,) = [r for r in custom(resources, "NodePool") if r.inputs["metadata"]["name"] == "l4"]
    requirements = pool.inputs["spec"]["template"]["spec"]["requirements"]
    assert {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g6.xlarge"]} in requirements
    (deployment,) = of_type(resources, "kubernetes:apps/v1:Deployment")
    assert deployment.inputs["spec"]["replicas"] == 1
    assert deployment.inputs["metadata"]["namespace"] == "search"
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # The pods read exactly their weights object, through EKS Pod Identity.
    (association,) = of_type(resources, "aws:eks/podIdentityAssociation:PodIdentityAssociation")[1:] or [None]
    assert association is not None and association.inputs["serviceAccount"] == "llama-3-8b-v1-0-0"
    (read,) = [r for r in of_type(resources, "aws:iam/rolePolicy:RolePolicy") if "read-weights" in r.name]
    statement = json.loads(read.inputs["policy"])["Statement"][0]
    assert statement["Resource"] == ["arn:aws:s3:::team-models/llama-3-8b/1.0.0/weights.tar"]
    assert API_KEY not in json.dumps([r.inputs for r in resources])


def test_the_canary_example_splits_traffic_by_the_configured_weight(tmp_path: Path) -> None:
    resources = run_example("canary-on-existing-cluster", tmp_path, canaryWeight="25")
    (route,) = custom(resources, "HTTPRoute")
    split = route.inputs["spec"]["rules"][-1]["backendRefs"]
    assert [(ref["name"], ref["weight"]) for ref in split] == [("qwen-2-7b-v1-0-0", 75), ("qwen-2-7b-v1-1-0", 25)]
    assert route.inputs["spec"]["parentRefs"] == [{"name": "shared", "namespace": "gateways"}]
    deployments = of_type(resources, "kubernetes:apps/v1:Deployment")
    assert sorted(d.inputs["metadata"]["name"] for d in deployments) == ["qwen-2-7b-v1-0-0", "qwen-2-7b-v1-1-0"]
    assert {d.inputs["metadata"]["namespace"] for d in deployments} == {"recsys"}
    assert not of_type(resources, "aws:eks/cluster:Cluster")  # the cluster exists: nothing is created for it


def test_a_canary_weight_over_100_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"RolloutVersion 1.0.0: weight -20 is not a percentage; give 0 to 100"):
        run_example("canary-on-existing-cluster", tmp_path, canaryWeight="120")


def test_the_observability_example_installs_the_stack_alone(tmp_path: Path) -> None:
    resources = run_example("observability-only", tmp_path)
    charts = {r.inputs["chart"]: r.inputs["version"] for r in of_type(resources, "kubernetes:helm.sh/v3:Release")}
    assert {"kube-prometheus-stack", "loki", "alloy", "dcgm-exporter"} <= set(charts)
    assert all(charts.values()), "every chart is pinned"
    (rule,) = custom(resources, "PrometheusRule")
    expressions = json.dumps(rule.inputs["spec"])
    assert 'le=~\\"1.0|1\\"' in expressions  # the TTFT bound given in the example's config: 1 s
    (loki,) = [r for r in of_type(resources, "kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "loki"]
    assert loki.inputs["values"]["loki"]["limits_config"]["retention_period"] == f"{14 * 24}h"
    assert not [r for r in resources if r.type.startswith(("aws:", "gcp:"))]  # no cloud: logs on the cluster


def test_the_canary_example_deploys_to_a_real_cluster_and_steps_by_config(embedded_cluster, tmp_path: Path) -> None:
    """The real engine and the official Kubernetes provider against the embedded cluster: the cluster has the
    Gateway API (as one that runs a Gateway does), the example deploys two versions and their route, the pods
    land on the fake GPU nodes, and a canary step previews as a change of the route alone."""
    embedded_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                             input_text=yaml.safe_dump_all(list(crd_documents(GATEWAY_API))))
    project = tmp_path / "canary"
    project.mkdir()
    shutil.copy(EXAMPLES / "canary-on-existing-cluster" / "__main__.py", project)
    manifest = yaml.safe_load((EXAMPLES / "canary-on-existing-cluster" / "Pulumi.yaml").read_text())
    manifest["runtime"]["options"]["virtualenv"] = str(ROOT / ".venv")
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(manifest))
    env = engine_env(tmp_path)
    (tmp_path / "state").mkdir()

    def pulumi(*args: str) -> str:
        done = subprocess.run(["pulumi", *args, "--stack", "embedded"], cwd=project, env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert done.returncode == 0, f"pulumi {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    subprocess.run(["pulumi", "stack", "init", "embedded"], cwd=project, env=env, check=True, capture_output=True)
    settings = {"kubeconfigPath": str(embedded_cluster.kubeconfig), "namespace": "canary-example",
                "canaryWeight": "10", "gatewayName": "shared", "gatewayNamespace": "gateways", "gpuType": "nvidia-l4"}
    for key, value in settings.items():
        pulumi("config", "set", key, value)
    pulumi("config", "set", "--secret", "apiKey", API_KEY)
    try:
        pulumi("up", "--yes", "--skip-preview")
        route = json.loads(embedded_cluster.kubectl("get", "httproute", "qwen-2-7b", "-n", "canary-example",
                                                    "-o", "json"))
        split = route["spec"]["rules"][-1]["backendRefs"]
        assert [(ref["name"], ref["weight"]) for ref in split] == [("qwen-2-7b-v1-0-0", 90), ("qwen-2-7b-v1-1-0", 10)]

        def running_pods() -> list[dict[str, Any]]:
            pods = json.loads(embedded_cluster.kubectl("get", "pods", "-n", "canary-example", "-o", "json"))["items"]
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            return running if len(running) == 2 else []

        pods = wait_for(running_pods, "both versions' pods to run on fake GPU nodes", timeout=120)
        assert all(p["spec"]["nodeName"] for p in pods)

        pulumi("config", "set", "canaryWeight", "50")
        preview = json.loads(pulumi("preview", "--json"))
        changed = [(step["op"], step["urn"].split("::")[-1]) for step in preview["steps"] if step["op"] != "same"]
        assert changed == [("update", "qwen-2-7b-route")]
    finally:
        pulumi("destroy", "--yes", "--skip-preview")
