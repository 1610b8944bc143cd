"""A newcomer's first request: `make up` ends with a `curl` that gets a completion through the stack's routes.

The local stack is deployed by the real engine to an embedded cluster of its own, with what `llmplane cluster up`
runs beside it: the vLLM simulator standing in for the model's pods and the local gateway standing in for the
Gateway's Envoy (toolchain/local_gateway.py). The command the summary prints is run as printed, by a shell.
Below it, the gateway's routing rules on routes written out here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from llmplane.spec import load_spec
from llmplane.stacks.local import cluster_addons
from llmplane.stacks.local.embedded_cluster import EmbeddedCluster
from llmplane.stacks.local.for_environment import fake_nodes
from llmplane.toolchain import completions
from llmplane.toolchain.local_gateway import Refusal, RoutingTable
from llmplane.toolchain.localstack import free_port

from tests.conftest import _shipped_config, engine_values
from tests.engine import ROOT, Engine, wait_for

HOST = "llm.local.llmplane.dev"


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory):
    """The local stack deployed, what runs beside it started, and the lines `make up` ends with."""
    spec = load_spec(engine_values(_shipped_config("local")), "local")
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("cluster"))
    cluster.up(fake_nodes(spec), say=lambda _message: None)
    try:
        prometheus_port = free_port()
        engine = Engine(tmp_path_factory.mktemp("engine"),
                        lambda c: c.update(kubeconfigFile=str(cluster.kubeconfig)))
        config = engine.config_file("aimed", lambda c: c["llmplane:observability"].update(
            prometheusUrl=f"http://127.0.0.1:{prometheus_port}"))
        addons = cluster_addons.Addons(prometheus_port, (cluster_addons.SimulatedModel("llama-3-8b", "1.0.0",
                                                                                       "1.0.0"),), keda=False)
        engine.up(config)
        cluster_addons.start(cluster, addons, say=lambda _message: None)
        done = subprocess.run([sys.executable, "-m", "llmplane.stacks.local.summary", "--stack", "local",
                               "--kubeconfig", str(cluster.kubeconfig)], cwd=ROOT, env=engine.env,
                              capture_output=True, text=True, timeout=120, check=True)
        yield done.stdout
    finally:
        cluster.down(say=lambda _message: None)


def _try_it(summary: str) -> str:
    [line] = [line for line in summary.splitlines() if line.startswith("try it: ")]
    return line.removeprefix("try it: ")


def _run(command: str) -> tuple[int, dict]:
    """The command as a user runs it, with `-w` added to read the status."""
    done = subprocess.run(["bash", "-c", command + " -w '\\n%{http_code}'"], capture_output=True, text=True,
                          timeout=60, check=False)
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), json.loads(body) if body.startswith("{") else {}


def test_make_up_ends_with_one_curl_to_the_first_models_route(summary):
    command = _try_it(summary)
    assert command.startswith("curl -s http://127.0.0.1:")
    assert "/llama-3-8b/v1/completions -H 'Host: llm.local.llmplane.dev'" in command


def test_the_printed_curl_gets_a_completion_from_the_served_version(summary):
    status, answer = wait_for(lambda: (r := _run(_try_it(summary)))[0] == 200 and r, "a completion", timeout=90)
    assert status == 200
    assert answer["object"] == "text_completion"
    assert answer["model"] == "llama-3-8b:1.0.0"
    [choice] = answer["choices"]
    assert len(choice["text"].split()) == 16
    assert choice["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 16


def test_a_model_the_pods_do_not_serve_is_a_404_naming_it(summary):
    command = _try_it(summary).replace('"model": "llama-3-8b"', '"model": "llama-3-70b"')
    status, answer = wait_for(lambda: (r := _run(command))[0] != 503 and r, "a ready replica", timeout=90)
    assert status == 404
    assert answer["error"]["message"] == "The model `llama-3-70b` does not exist."


def _route(rules: list[dict], hostnames: tuple[str, ...] = (HOST,), namespace: str = "serving") -> dict:
    return {"kind": "HTTPRoute", "metadata": {"name": "llama-3-8b", "namespace": namespace},
            "spec": {"hostnames": list(hostnames), "parentRefs": [{"name": "gw", "namespace": "edge"}],
                     "rules": rules}}


def _table(*rules: dict, ready: bool = True, route_namespace: str = "serving") -> RoutingTable:
    listener = {"name": "global", "hostname": HOST, "port": 443, "protocol": "HTTPS",
                "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "serving"}}}}}
    pods = [{"kind": "Pod", "metadata": {"name": f"{service}-pod", "namespace": "serving",
                                         "labels": {"llmplane.dev/model": "llama-3-8b"}},
             "spec": {"containers": [{"args": ["--served-model-name", f"llama-3-8b:{service[-5:]}", "llama-3-8b",
                                               "--port", "8000"]}]}} for service in ("v-1.0.0", "v-1.1.0")]
    slices = [{"kind": "EndpointSlice", "metadata": {"namespace": "serving",
                                                     "labels": {"kubernetes.io/service-name": service}},
               "endpoints": [{"conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "name": f"{service}-pod"}}]}
              for service in ("v-1.0.0", "v-1.1.0")]
    return RoutingTable({
        "Gateway": [{"kind": "Gateway", "metadata": {"name": "gw", "namespace": "edge"},
                     "spec": {"listeners": [listener]}}],
        "Namespace": [{"kind": "Namespace", "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}
                      for name in ("serving", "edge", "other")],
        "HTTPRoute": [_route(list(rules), namespace=route_namespace)], "Pod": pods, "EndpointSlice": slices})


PREFIX_RULE = {"matches": [{"path": {"type": "PathPrefix", "value": "/llama-3-8b/v1"}}],
               "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch",
                                                                           "replacePrefixMatch": "/v1"}}}],
               "backendRefs": [{"name": "v-1.0.0", "port": 8000, "weight": 100},
                               {"name": "v-1.1.0", "port": 8000, "weight": 0}]}
HEALTH_RULE = {"matches": [{"path": {"type": "Exact", "value": "/llama-3-8b/v1/models"}}],
               "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath",
                                                                           "replaceFullPath": "/health"}}}],
               "backendRefs": [{"name": "v-1.1.0", "port": 8000}]}


def test_a_prefix_rewrite_keeps_the_rest_of_the_path_and_weight_zero_is_never_drawn():
    table = _table(PREFIX_RULE)
    targets = {table.resolve("POST", HOST, "/llama-3-8b/v1/chat/completions", {}) for _ in range(50)}
    assert {(t.path, t.served_names, t.pod) for t in targets} == {
        ("/v1/chat/completions", ("llama-3-8b:1.0.0", "llama-3-8b"), "serving/v-1.0.0-pod")}


def test_an_exact_match_wins_over_a_longer_prefix_and_replaces_the_whole_path():
    target = _table(PREFIX_RULE, HEALTH_RULE).resolve("GET", f"{HOST}:8080", "/llama-3-8b/v1/models", {})
    assert (target.path, target.pod) == ("/health", "serving/v-1.1.0-pod")


def test_another_host_or_a_namespace_the_listener_does_not_admit_finds_no_route():
    with pytest.raises(Refusal, match="no HTTPRoute rule matches host 'other.example' and path '/llama-3-8b/v1/x'"):
        _table(PREFIX_RULE).resolve("POST", "other.example", "/llama-3-8b/v1/x", {})
    with pytest.raises(Refusal) as refused:
        _table(PREFIX_RULE, route_namespace="other").resolve("POST", HOST, "/llama-3-8b/v1/x", {})
    assert refused.value.status == 404


def test_no_ready_replica_is_a_503_that_says_why():
    with pytest.raises(Refusal) as refused:
        _table(PREFIX_RULE, ready=False).resolve("POST", HOST, "/llama-3-8b/v1/completions", {})
    assert refused.value.status == 503
    assert str(refused.value) == ("no ready replica behind Service serving/v-1.0.0: it is scaled to zero or still "
                                  "starting")


def test_a_filter_the_gateway_does_not_implement_is_refused_not_ignored():
    mirrored = {**PREFIX_RULE, "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "x"}}}]}
    with pytest.raises(Refusal, match="filter RequestMirror is not implemented by the local gateway"):
        _table(mirrored).resolve("POST", HOST, "/llama-3-8b/v1/completions", {})


def test_the_readme_shows_the_command_make_up_prints(summary):
    readme = (Path(ROOT) / "README.md").read_text()
    shown = next(line for line in readme.splitlines() if line.startswith("curl -s http://127.0.0.1:"))
    without_port = [re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", word) for word in shlex.split(shown)]
    assert without_port == [re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", word)
                            for word in shlex.split(_try_it(summary))]


def test_a_lora_adapter_is_served_by_its_name_and_answers_with_it():
    """A pod started with `--lora-modules sql=...` answers requests for `sql` as vLLM does: the response names the
    adapter, and the base model's names keep answering with the versioned name."""
    table = _table(PREFIX_RULE)
    pod = table._of("Pod")[0]
    pod["spec"]["containers"][0]["args"] += ["--enable-lora", "--lora-modules", "sql=/models/extra/lora-sql",
                                             "--max-loras", "1"]
    target = table.resolve("POST", HOST, "/llama-3-8b/v1/completions", {})
    asked = {name: completions.answer("/v1/completions", json.dumps({"model": name, "prompt": "hi"}).encode(),
                                      target.served_names)["model"] for name in ("sql", "llama-3-8b")}
    assert asked == {"sql": "sql", "llama-3-8b": "llama-3-8b:1.0.0"}
    with pytest.raises(completions.RequestError, match="The model `lora-sql` does not exist"):
        completions.answer("/v1/completions", json.dumps({"model": "lora-sql", "prompt": "hi"}).encode(),
                           target.served_names)
