"""VllmService and ModelRollout, as the offline plan of each environment shows them."""

from __future__ import annotations

import json
import math
import re

import pytest
from llmplane.components.serving.vllm_image import content_tag
from llmplane.facts.engines import RELEASES
from llmplane.stacks.diff import diff_plans
from llmplane.stacks.program import uncredentialed_fetches
from llmplane.stacks.review import _changed_lines

from tests.planning import (
    DEPLOYMENT,
    HTTP_ROUTE,
    NETWORK_POLICY,
    PDB,
    SERVICE,
    SERVICE_MONITOR,
    model_servers,
    named,
    plan_of,
    plan_with,
)

ENVIRONMENTS = ["local", "dev", "staging", "prod"]
EXTENSION_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyExtensionPolicy"

DEPLOYMENTS = {
    "local": ["llama-3-8b-v1-0-0"],
    "dev": ["llama-3-8b-v1-1-0"],
    "staging": ["llama-3-8b-v1-0-0", "llama-3-8b-v1-1-0"] * 2,  # two AWS regions
    "prod": ["llama-3-70b-v1-0-0", "llama-3-70b-v1-0-1", "llama-3-70b-v1-1-0"] * 2  # the two AWS regions: the 70B
    + ["llama-3-8b-v1-0-0", "llama-3-8b-v1-1-0"] * 4,  # every cluster serves the 8B
}
"""The vLLM Deployments of each environment: one per version per cluster, named `<model>-v<version, dashed>`."""

ROUTE_WEIGHTS = {
    "local": {"llama-3-8b": {"llama-3-8b-v1-0-0": 100}},
    "dev": {"llama-3-8b": {"llama-3-8b-v1-1-0": 100}},
    "staging": {"llama-3-8b": {"llama-3-8b-v1-0-0": 90, "llama-3-8b-v1-1-0": 10}},
    "prod": {"llama-3-8b": {"llama-3-8b-v1-0-0": 90, "llama-3-8b-v1-1-0": 10},
             # 1.0.1 is 1.0.0 on another engine release; 1.1.0 is a shadow: mirrored, never weighed
             "llama-3-70b": {"llama-3-70b-v1-0-0": 90, "llama-3-70b-v1-0-1": 10}},
}
"""What each model's route weighs, by version resource, as the environment files set it."""

VERSION_HEADERS = {"1.0.0": "v1-0-0", "1.0.1": "v1-0-1", "1.1.0": "v1-1-0"}
"""The `x-llmplane-version` values the environments use, and the suffix of that version's resources."""


def _container(deployment) -> dict:
    return deployment.inputs["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_one_deployment_per_version_per_cluster(environment):
    plan = plan_of(environment)
    actual = sorted(d.inputs["metadata"]["name"] for d in model_servers(plan))
    assert actual == sorted(DEPLOYMENTS[environment])


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_deployments_request_their_gpus_and_are_hardened(environment):
    plan = plan_of(environment)
    for deployment in model_servers(plan):
        pod = deployment.inputs["spec"]["template"]["spec"]
        container = _container(deployment)
        model = plan.spec.models[deployment.inputs["metadata"]["labels"]["llmplane.dev/model"]]
        gpus = str(model.engine.tensor_parallel_size)
        resources = container["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == gpus
        assert resources["requests"] == resources["limits"], "requests = limits: Guaranteed QoS"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == "llmplane.dev/gpu-type"
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert "@sha256:" in container["image"], "images are referenced by digest only"
        zones = [c["topologyKey"] for c in pod["topologySpreadConstraints"]]
        assert "topology.kubernetes.io/zone" in zones


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_probes_wait_for_the_model_to_load(environment):
    plan = plan_of(environment)
    for deployment in model_servers(plan):
        container = _container(deployment)
        model = plan.spec.models[deployment.inputs["metadata"]["labels"]["llmplane.dev/model"]]
        startup = container["startupProbe"]
        # Through the launcher, a replica is started and ready only once every weight file matched its digest
        # and vLLM answers /health (the launcher's gate); on the download path vLLM's /health says it.
        launcher = "weights_cache.py" in " ".join(container["command"])
        gate = {"path": "/ready", "port": 8001} if launcher else {"path": "/health", "port": "http"}
        assert startup["httpGet"] == gate
        assert startup["periodSeconds"] * startup["failureThreshold"] >= model.load_seconds
        assert container["readinessProbe"]["httpGet"] == gate
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_stopping_pods_drain_in_flight_generations():
    deployment = model_servers(plan_of("prod"))[0]
    pod = deployment.inputs["spec"]["template"]["spec"]
    pre_stop = _container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert "vllm:num_requests_running" in pre_stop[-1]
    assert pod["terminationGracePeriodSeconds"] >= 300


def test_shared_memory_and_writable_caches_are_volumes():
    deployment = model_servers(plan_of("prod"))[0]
    volumes = {v["name"]: v for v in deployment.inputs["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    mounts = {m["mountPath"] for m in _container(deployment)["volumeMounts"]}
    assert {"/dev/shm", "/tmp", "/var/cache/vllm"} <= mounts


def test_engine_arguments_come_from_the_spec():
    """prod's llama-3-70b (tp 4, maxModelLen 8192, streamed): the launcher puts the model folder first (the
    verified node cache or the stream), so the container's arguments are the flags after it."""
    deployment = named(plan_of("prod"), DEPLOYMENT, "llama-3-70b-v1-0-0")[0]
    assert _container(deployment)["args"] == [
        "--served-model-name", "llama-3-70b:1.0.0", "llama-3-70b", "--port", "8000",
        "--tensor-parallel-size", "4", "--gpu-memory-utilization", "0.9", "--max-model-len", "8192",
        "--max-num-seqs", "128", "--enable-prefix-caching",
        "--otlp-traces-endpoint", "http://jaeger.monitoring.svc.cluster.local:4317",
        # Tensor parallel 4 on a release whose streamer reads `distributed`: the ranks share the reading.
        "--load-format", "runai_streamer", "--model-loader-extra-config", '{"concurrency": 16, "distributed": true}']


def test_a_step_token_budget_reaches_vllm_when_the_spec_sets_one():
    def budget(values):
        values["llmplane:models"]["llama-3-8b"]["engine"]["maxNumBatchedTokens"] = 8192

    plan = plan_with("dev", budget)
    for deployment in named(plan, DEPLOYMENT, "llama-3-8b-v1-1-0"):
        args = _container(deployment)["args"]
        assert args[args.index("--max-num-batched-tokens") + 1] == "8192"


def test_api_key_reaches_vllm_only_through_a_secret():
    plan = plan_of("prod")
    secrets = plan.of_type("kubernetes:core/v1:Secret")
    assert secrets and all(s.inputs["stringData"] == "[secret]" for s in secrets)
    for deployment in model_servers(plan):
        container = _container(deployment)
        env = {e["name"]: e for e in container["env"]}
        assert "VLLM_API_KEY" not in env, "the key is mounted as a file, not put in the environment"
        volumes = {v["name"]: v for v in deployment.inputs["spec"]["template"]["spec"]["volumes"]}
        assert volumes["api-key"]["secret"]["secretName"] == "vllm-api-key"
        mount = next(m for m in container["volumeMounts"] if m["name"] == "api-key")
        assert env["LLMPLANE_API_KEY_FILE"]["value"] == f"{mount['mountPath']}/api-key"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_version_has_service_pdb_and_network_policy(environment):
    plan = plan_of(environment)
    names = set(DEPLOYMENTS[environment])
    for type_ in (SERVICE, PDB, NETWORK_POLICY):
        assert names <= {r.inputs["metadata"]["name"] for r in plan.of_type(type_)}, type_
    for pdb in plan.of_type(PDB):
        assert pdb.inputs["spec"]["maxUnavailable"] == 1


def test_network_policy_admits_only_gateway_prometheus_and_the_endpoint_pickers():
    plan = plan_of("prod")
    policy = named(plan, NETWORK_POLICY, "llama-3-8b-v1-0-0")[0]
    assert policy.inputs["spec"]["podSelector"]["matchLabels"]["llmplane.dev/model-version"] == "1.0.0"
    sources = policy.inputs["spec"]["ingress"][0]["from"]
    assert {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for s in sources if "namespaceSelector" in s} == {"llmplane-gateway", "monitoring"}
    assert [s for s in sources if "namespaceSelector" not in s] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "endpoint-picker"}}}]


def test_service_monitors_follow_observability():
    vllm = [m for m in plan_of("prod").of_type(SERVICE_MONITOR) if "llmplane:serving:VllmService" in m.urn]
    assert len(vllm) == len(model_servers(plan_of("prod")))
    assert plan_of("local").of_type(SERVICE_MONITOR) == [], "local has observability disabled"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_traffic_weights_equal_the_environment(environment):
    """Where versions are Services, the route's split rule weighs them; where a gateway picks the version (one
    InferencePool per rule), its version split carries the weights, one line per version, and every version
    that takes traffic has its own rule."""
    plan = plan_of(environment)
    routes = [r for r in plan.of_type(HTTP_ROUTE) if "llmplane.dev/model" in r.inputs["metadata"]["labels"]]
    assert routes
    for route in routes:
        model_name = route.inputs["metadata"]["name"]
        expected = ROUTE_WEIGHTS[environment][model_name]
        rules = route.inputs["spec"]["rules"]
        by_header = {h["value"]: rule for rule in rules for m in rule["matches"] for h in m.get("headers", [])
                     if h["name"] == "x-llmplane-version"}
        if not by_header:
            weights = {_version_of(b): b["weight"] for b in rules[-1]["backendRefs"]}
            assert weights == expected
            continue
        assert {f"{model_name}-{VERSION_HEADERS[v]}": [_version_of(b) for b in r["backendRefs"]]
                for v, r in by_header.items()} == {name: [name] for name, weight in expected.items() if weight}
        [split] = [p for p in plan.of_type(EXTENSION_POLICY) if _cluster(plan, p) == _cluster(plan, route)]
        lua = split.inputs["spec"]["lua"][0]["inline"]
        block = lua[lua.index(f'["{model_name}"] = {{'):]
        block = block[:block.index("  },")]
        written = {f"{model_name}-{VERSION_HEADERS[v]}": int(w) for v, w in re.findall(r'\{"([^"]+)", (\d+)\}', block)}
        assert written == {name: weight for name, weight in expected.items() if weight}


def _cluster(plan, resource) -> str:
    """The cluster a resource belongs to: its name starts with the cluster's."""
    return next(c.name for c in plan.spec.clusters if resource.name.startswith(f"{c.name}-"))


def _version_of(backend: dict) -> str:
    """The version a route backend serves: its Service or InferencePool (named alike), or the one KEDA's interceptor
    forwards to (a version that may be at zero replicas)."""
    if backend["name"] == "keda-add-ons-http-interceptor-proxy":
        (header,) = backend["filters"][0]["requestHeaderModifier"]["set"]
        return header["value"]
    return backend["name"]


def test_shadow_versions_are_mirrored_and_never_answer():
    plan = plan_of("prod")
    route = named(plan, HTTP_ROUTE, "llama-3-70b")[0]
    api_rules = [r for r in route.inputs["spec"]["rules"]
                 if r["matches"][0]["path"] == {"type": "PathPrefix", "value": "/llama-3-70b/v1"}]
    assert api_rules
    for rule in api_rules:
        mirrors = [f["requestMirror"]["backendRef"]["name"] for f in rule["filters"] if f["type"] == "RequestMirror"]
        assert mirrors == ["shadow-compare-llama-3-70b"], "the comparator calls the shadow and stable itself"
    for rule in route.inputs["spec"]["rules"]:
        assert "llama-3-70b-v1-1-0" not in [b["name"] for b in rule["backendRefs"]]


def test_ab_versions_are_pinned_by_header():
    def ab_test(values):
        versions = values["llmplane:models"]["llama-3-8b"]["versions"]
        versions[0].update(weight=50, role="ab")
        versions[1].update(weight=50, role="ab")

    plan = plan_with("staging", ab_test)
    route = plan.of_type(HTTP_ROUTE)[0]
    pinned = [r for r in route.inputs["spec"]["rules"]
              if r["matches"][0].get("headers", [{}])[0].get("name") == "x-llmplane-variant"]
    assert {r["matches"][0]["headers"][0]["value"] for r in pinned} == {"1.0.0", "1.1.0"}
    assert [len(r["backendRefs"]) for r in pinned] == [1, 1]


def test_moving_the_canary_changes_only_the_weights_in_each_gateways_version_split():
    def canary_to_25(values):
        versions = values["llmplane:models"]["llama-3-8b"]["versions"]
        versions[0]["weight"], versions[1]["weight"] = 75, 25

    changes = diff_plans(plan_of("prod").resources, plan_with("prod", canary_to_25).resources)
    assert {c.type for c in changes} == {EXTENSION_POLICY}
    assert {c.kind for c in changes} == {"changed"}, "nothing is replaced"
    clusters_serving = len(plan_of("prod").spec.clusters_of(plan_of("prod").spec.models["llama-3-8b"]))
    assert len(changes) == clusters_serving
    for change in changes:
        [prop] = change.properties
        assert prop.path == "spec.lua[0].inline"
        removed, added = _changed_lines(prop.before, prop.after)
        assert (removed, added) == ('`{"1.0.0", 90},`<br>`{"1.1.0", 10},`', '`{"1.0.0", 75},`<br>`{"1.1.0", 25},`')


def test_startup_budget_grows_with_load_time():
    def slow(values):
        values["llmplane:models"]["llama-3-8b"]["loadSeconds"] = 1800

    deployment = model_servers(plan_with("local", slow))[0]
    startup = _container(deployment)["startupProbe"]
    assert startup["failureThreshold"] == math.ceil(1800 / 10) + 6


def test_cloud_clusters_build_the_image_into_their_own_registry_and_serve_it_by_digest():
    """One serving image per engine release a cluster runs: prod's AWS clusters run 0.14.0 and the 70B's engine
    canary on 0.31.0, GKE runs 0.14.0 only; each version's pods run its release's image."""
    plan = plan_of("prod")
    images = plan.of_type("docker-build:index:Image")
    built = sorted((image.name.split("-vllm-image")[0], image.inputs["buildArgs"]["VLLM_BASE"]) for image in images)
    assert built == sorted([(c, RELEASES[r].image) for c in ("aws-use1", "aws-usw2") for r in ("0.14.0", "0.31.0")]
                           + [("gcp-usc1", RELEASES["0.14.0"].image)])
    for image in images:
        assert image.inputs["push"] is True
        assert image.inputs["registries"] == "[secret]", "the registry token never shows"
    tags = {image.inputs["buildArgs"]["VLLM_BASE"]: {i.inputs["tags"][0].rsplit(":", 1)[1] for i in images
                                                    if i.inputs["buildArgs"] == image.inputs["buildArgs"]}
            for image in images}
    # One immutable tag per release everywhere: the release, then a digest of its base and the build context.
    assert {base: len(tag) for base, tag in tags.items()} == {RELEASES["0.14.0"].image: 1, RELEASES["0.31.0"].image: 1}
    assert all(re.fullmatch(r"0\.(14|31)\.0-[0-9a-f]{12}", next(iter(t))) for t in tags.values())
    for deployment in model_servers(plan):
        cluster = deployment.urn.split("::")[-1].split("-llama")[0]
        labels = deployment.inputs["metadata"]["labels"]
        model = plan.spec.models[labels["llmplane.dev/model"]]
        release = model.release_of(labels["llmplane.dev/model-version"])
        image = _container(deployment)["image"]
        assert "@sha256:" in image
        registry = {"onprem": RELEASES[release].image.split("@")[0], "aws": f"{cluster}-vllm-repo:{release}-",
                    "gcp": f"{plan.spec.cluster(cluster).region}-docker.pkg.dev/"}[plan.spec.cluster(cluster).cloud]
        assert registry in image


def test_image_tag_changes_only_with_the_build_context_or_the_release(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    base = RELEASES["0.14.0"].image
    before = content_tag("0.14.0", base, tmp_path)
    assert content_tag("0.14.0", base, tmp_path) == before
    assert content_tag("0.24.0", RELEASES["0.24.0"].image, tmp_path) != before
    (tmp_path / "entrypoint.py").write_text("print()\n")
    assert content_tag("0.14.0", base, tmp_path) != before


def test_storage_credentials_reach_the_fetcher_as_secret_files_only():
    credentials = "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = example-secret-value\n"

    def with_credentials(values):
        values["llmplane:secrets"]["storageCredentials"] = {"aws": credentials}

    plan = plan_with("local", with_credentials)
    secret = [s for s in plan.of_type("kubernetes:core/v1:Secret")
              if s.inputs["metadata"]["name"] == "model-storage-credentials"]
    assert len(secret) == 1 and secret[0].inputs["stringData"] == "[secret]"
    deployment = model_servers(plan)[0]
    env = {e["name"]: e["value"] for e in _container(deployment)["env"] if "value" in e}
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/var/run/secrets/llmplane-storage/aws-credentials"
    volumes = {v["name"]: v for v in deployment.inputs["spec"]["template"]["spec"]["volumes"]}
    assert volumes["storage-credentials"]["secret"]["secretName"] == "model-storage-credentials"
    assert "example-secret-value" not in str([r.as_json() for r in plan.resources])


def test_an_onprem_cluster_reading_a_cloud_bucket_without_credentials_is_warned_about():
    spec = plan_of("local").spec
    warnings = uncredentialed_fetches(spec, set())
    assert len(warnings) == len(spec.models["llama-3-8b"].versions)
    assert warnings[0].startswith("on-prem cluster 'local' fetches s3://llmplane-models/llama-3-8b/")
    assert "llmplane:secrets.storageCredentials.aws" in warnings[0] and "https:// mirror" in warnings[0]
    assert uncredentialed_fetches(spec, {"aws"}) == []
    # prod's on-prem cluster reads the https mirror; its cloud clusters use workload identity.
    assert uncredentialed_fetches(plan_of("prod").spec, set()) == []


def test_without_storage_credentials_workload_identity_is_assumed():
    plan = plan_of("prod")
    assert not [s for s in plan.of_type("kubernetes:core/v1:Secret")
                if s.inputs["metadata"]["name"] == "model-storage-credentials"]


def test_eks_service_accounts_may_read_exactly_their_catalogs_weights():
    plan = plan_of("prod")
    associations = [a for a in plan.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
                    if a.inputs["namespace"] == "llmplane"]
    # Every vLLM version's account, and each node-cached pool's prefetch account, in each of the two AWS clusters.
    per_cluster = ["inference-model-cache", "large-model-cache", "llama-3-70b-v1-0-0", "llama-3-70b-v1-0-1",
                   "llama-3-70b-v1-1-0",
                   "llama-3-8b-v1-0-0", "llama-3-8b-v1-1-0"]
    assert sorted(a.inputs["serviceAccount"] for a in associations) == sorted(per_cluster * 2)
    for policy in [p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if "-weights-" in p.name]:
        read, *listing = json.loads(policy.inputs["policy"])["Statement"]
        assert read["Action"] == ["s3:GetObject"]
        # The streamed versions' folders (their files and nothing beside them), listable by prefix only.
        assert all(arn.startswith("arn:aws:s3:::llmplane-models/") and arn.endswith("/*") for arn in read["Resource"])
        folders = {arn.removeprefix("arn:aws:s3:::llmplane-models/").removesuffix("*") for arn in read["Resource"]}
        assert {s["Condition"]["StringLike"]["s3:prefix"][0].removesuffix("*") for s in listing} == folders
        assert all(s["Action"] == ["s3:ListBucket"] and s["Resource"] == "arn:aws:s3:::llmplane-models"
                   for s in listing)


def test_each_cloud_fetches_weights_from_its_own_mirror_with_workload_identity():
    plan = plan_of("prod")
    uris = {}
    # Streamed versions are read by each pool's node-cache prefetch (the replicas read the node's verified copy).
    for config in plan.of_type("kubernetes:core/v1:ConfigMap"):
        if "manifest.json" in config.inputs.get("data", {}):
            cluster = config.name.split("-inference")[0].split("-large")[0]
            for entry in json.loads(config.inputs["data"]["manifest.json"])["versions"]:
                uris.setdefault(plan.spec.cluster(cluster).cloud, set()).add(
                    (entry["uri"].split("://")[0], (entry.get("endpoint") or "").split("://")[0]))
    # The on-prem https mirror is streamed as S3-compatible storage at its https endpoint.
    assert uris == {"aws": {("s3", "")}, "gcp": {("gs", "")}, "onprem": {("s3", "https")}}
    # The vLLM and prefetch accounts (the pickers, the feedback service and the shadow comparator read no weights).
    gke_accounts = [a for a in plan.of_type("kubernetes:core/v1:ServiceAccount")
                    if "gcp-usc1" in a.urn and ("llmplane:serving:VllmService" in a.urn
                                                or "llmplane:serving:NodeModelCache" in a.urn)]
    assert gke_accounts
    assert all(a.inputs["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] for a in gke_accounts)
    bindings = [b for b in plan.of_type("gcp:serviceaccount/iAMMember:IAMMember")
                if "[llmplane/" in b.inputs["member"]]  # cert-manager's and external-dns' are the gateway's
    assert {b.inputs["member"] for b in bindings} == {
        f"serviceAccount:llmplane-prod.svc.id.goog[llmplane/{a.inputs['metadata']['name']}]" for a in gke_accounts}
    readers = plan.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert [(r.inputs["bucket"], r.inputs["role"]) for r in readers] == [("llmplane-models-gcp",
                                                                         "roles/storage.objectViewer")]


def _gi(quantity: str) -> float:
    assert quantity.endswith("Gi"), quantity
    return float(quantity[:-2])


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_ephemeral_storage_covers_every_disk_backed_volume(environment):
    """The kubelet evicts a pod whose emptyDirs outgrow its ephemeral-storage limit: the weights cache alone is
    35Gi for an 8B model and 290Gi for a 70B one, so the request and limit must cover it all."""
    for deployment in model_servers(plan_of(environment)):
        pod = deployment.inputs["spec"]["template"]["spec"]
        disk = sum(_gi(v["emptyDir"]["sizeLimit"]) for v in pod["volumes"]
                   if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory")
        resources = _container(deployment)["resources"]
        assert _gi(resources["requests"]["ephemeral-storage"]) >= disk + 1
        assert resources["limits"]["ephemeral-storage"] == resources["requests"]["ephemeral-storage"]


def test_liveness_never_restarts_a_busy_server_while_readiness_reacts_in_seconds():
    container = _container(model_servers(plan_of("prod"))[0])
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 120, "two minutes of silence before a restart"
    assert live["timeoutSeconds"] >= 10, "a slow answer from a busy engine is still an answer"
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 15, "out of rotation within 15 s"


@pytest.mark.parametrize(("environment", "cloud_port", "traces_port"), [("dev", 80, 4317), ("local", None, None)])
def test_egress_allows_only_dns_the_weights_source_and_credentials(environment, cloud_port, traces_port):
    policy = next(p for p in plan_of(environment).of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                  if p.inputs["metadata"]["labels"].get("app.kubernetes.io/name") == "vllm")
    assert set(policy.inputs["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = sorted((port["port"], port["protocol"]) for rule in policy.inputs["spec"]["egress"]
                   for port in rule["ports"])
    expected = [(53, "TCP"), (53, "UDP"), (443, "TCP")] + ([(cloud_port, "TCP")] if cloud_port else []) + (
        [(traces_port, "TCP")] if traces_port else [])  # Jaeger, where the environment traces
    assert ports == sorted(expected)
