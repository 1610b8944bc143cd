"""Cold start as deployed: what the environments' node caches, streamed weights, pre-pulled images, warm headroom and
scale from zero become in the plan (the components themselves are tested in test_cold_start_components.py, the
planner's figures in test_capacity_cold_start.py)."""

from __future__ import annotations

import json
import math

from llmplane.facts.clouds import GCP_FIXED_LOCAL_SSDS
from llmplane.facts.loading import NODE_CACHE_ROOTS

from tests.planning import DEPLOYMENT, HTTP_ROUTE, model_servers, named, plan_of, plan_with

DAEMONSET = "kubernetes:apps/v1:DaemonSet"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
NAMESPACE = "kubernetes:core/v1:Namespace"


CACHE_ROOTS = {
    "aws-use1": "/mnt/k8s-disks/0/llmplane-model-cache",  # instance-store NVMe, RAID0 by Karpenter
    "aws-usw2": "/mnt/k8s-disks/0/llmplane-model-cache",
    "gcp-usc1": "/mnt/stateful_partition/kube-ephemeral-ssd/llmplane-model-cache",  # GKE's local SSD
    "onprem-dc1": "/var/lib/llmplane/model-cache",  # the host path prod's environment file gives
}
"""Each prod cluster's node-cache folder on its GPU nodes."""


def _container(deployment) -> dict:
    return deployment.inputs["spec"]["template"]["spec"]["containers"][0]


def _cluster_of(resource) -> str:
    return resource.name.split("-llama")[0].split("-inference")[0].split("-large")[0]


def _manifests(plan) -> dict[tuple[str, str], dict]:
    """Each node cache's prefetch manifest, by (cluster, pool)."""
    found = {}
    for config in plan.of_type("kubernetes:core/v1:ConfigMap"):
        if "manifest.json" in config.inputs.get("data", {}):
            cluster = plan.spec.cluster(_cluster_of(config))
            pool = next(p for p in cluster.pools if f"-{p.name}-cache" in config.name)
            found[(cluster.name, pool.name)] = json.loads(config.inputs["data"]["manifest.json"])
    return found


def test_streamed_versions_load_through_the_launcher_from_the_verified_node_cache():
    plan = plan_of("prod")
    manifests = _manifests(plan)
    for deployment in model_servers(plan):
        labels = deployment.inputs["metadata"]["labels"]
        name, version = labels["llmplane.dev/model"], labels["llmplane.dev/model-version"]
        model = plan.spec.models[name]
        cluster = plan.spec.cluster(_cluster_of(deployment))
        container = _container(deployment)
        assert container["command"][-3:] == ["/opt/llmplane/weights_cache.py", "launch", "--"]
        args = container["args"]
        assert args[args.index("--load-format") + 1] == "runai_streamer"
        env = {e["name"]: e["value"] for e in container["env"]}
        # A version serving another's weights (weightsOf: an engine canary) loads that version's one copy.
        held = model.catalog[version].weights_of or version
        assert json.loads(env["LLMPLANE_WEIGHT_FILES"]) == model.catalog[held].files
        # The replica reads no object storage: its node's prefetch reads the version's folder, once per node.
        assert not {"LLMPLANE_STREAM_URI", "AWS_ENDPOINT_URL"} & set(env)
        (entry,) = [e for e in manifests[(cluster.name, model.pool)]["versions"]
                    if (e["model"], e["version"]) == (name, held)]
        folder = model.catalog[held].folder_for(cluster.cloud)
        if cluster.cloud == "onprem":
            # The site's https mirror speaks S3: its first path segment is the bucket, its host the endpoint.
            assert folder.startswith("https://models.dc1.internal/")
            assert entry["endpoint"] == "https://models.dc1.internal"
            folder = "s3://" + folder.removeprefix("https://models.dc1.internal/")
        assert entry["uri"] + "/" == folder
        # The pool's cache, this version's folder only, read-only; the weights' emptyDir is gone.
        volumes = {v["name"]: v for v in deployment.inputs["spec"]["template"]["spec"]["volumes"]}
        assert volumes["node-weights"]["hostPath"]["path"] == f"{CACHE_ROOTS[cluster.name]}/weights/{name}/{held}"
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["node-weights"]["readOnly"] is True
        assert "model-cache" not in volumes


def test_each_cloud_keeps_its_node_cache_on_the_nodes_local_disks():
    plan = plan_of("prod")
    classes = {r.inputs["metadata"]["name"]: r.inputs["spec"]
               for r in plan.resources if r.type.endswith(":EC2NodeClass")}
    assert classes and all(spec["instanceStorePolicy"] == "RAID0" for spec in classes.values())
    (gke_pool,) = [r for r in plan.of_type("gcp:container/nodePool:NodePool") if r.inputs["name"] == "inference"]
    config = gke_pool.inputs["nodeConfig"]
    # g2-standard-8 comes with exactly one 375 GiB local SSD; the 350 GiB cache fits on it.
    assert config["ephemeralStorageLocalSsdConfig"]["localSsdCount"] == GCP_FIXED_LOCAL_SSDS["g2-standard-8"] == 1
    assert config["gcfsConfig"] == {"enabled": True}, "image streaming takes the pull off the critical path"
    assert NODE_CACHE_ROOTS["nvme"].startswith("/mnt/k8s-disks/0/")


def test_a_prefetch_fills_each_cached_pool_with_the_versions_deployed_there():
    plan = plan_of("prod")
    prefetches = [d for d in plan.of_type(DAEMONSET) if d.inputs["metadata"]["name"].startswith("model-cache-")]
    manifests = {r.name: json.loads(r.inputs["data"]["manifest.json"]) for r in
                 plan.of_type("kubernetes:core/v1:ConfigMap") if "manifest.json" in r.inputs.get("data", {})}
    assert len(prefetches) == len(manifests) == 6  # two AWS clusters x two pools, GKE, on-prem
    for name, manifest in manifests.items():
        cluster = plan.spec.cluster(_cluster_of(plan.by_urn()[[u for u in plan.by_urn() if u.endswith(name)][0]]))
        pool = next(p for p in cluster.pools if f"-{p.name}-cache" in name)
        # One copy per weights: an engine canary (weightsOf) reads the version it names.
        deployed = {(n, m.weights_version(v.version)) for n, m in plan.spec.models.items() if m.pool == pool.name
                    and cluster in plan.spec.clusters_of(m) for v in m.versions}
        assert {(e["model"], e["version"]) for e in manifest["versions"]} == deployed
    for prefetch in prefetches:
        pod = prefetch.inputs["spec"]["template"]["spec"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert all("nvidia.com/gpu" not in json.dumps(c.get("resources", {})) for c in pod["initContainers"])


def test_only_a_namespace_whose_pods_mount_the_node_cache_relaxes_pod_security():
    cached = [n for n in plan_of("prod").of_type(NAMESPACE) if n.inputs["metadata"]["name"] == "llmplane"]
    assert {n.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n in cached} == {"privileged"}
    assert {n.inputs["metadata"]["labels"]["pod-security.kubernetes.io/warn"] for n in cached} == {"restricted"}

    def without_cache(values):
        del values["llmplane:clusters"][0]["pools"][0]["nodeCache"]
        values["llmplane:models"]["llama-3-8b"].update(weights={"loadFormat": "download"}, compileCache=False)

    plain = [n for n in plan_with("local", without_cache).of_type(NAMESPACE)
             if n.inputs["metadata"]["name"] == "llmplane"]
    assert plain[0].inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_gpu_pool_pulls_the_serving_image_before_a_replica_needs_it():
    plan = plan_of("prod")
    prepulls = [d for d in plan.of_type(DAEMONSET) if d.inputs["metadata"]["name"].startswith("image-prepull-")]
    images = {_container(d)["image"] for d in model_servers(plan)}
    pulled = {c["image"] for d in prepulls for c in d.inputs["spec"]["template"]["spec"]["initContainers"]}
    assert images <= pulled
    pools = {(c.name, p.name) for c in plan.spec.clusters for p in c.pools if p.image_prepull}
    assert len(prepulls) == len(pools)


def test_warm_headroom_placeholders_yield_to_replicas_and_grow_in_the_scheduled_window():
    plan = plan_of("prod")
    placeholders = [d for d in plan.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"] == "warm-headroom-inference"]
    assert len(placeholders) == 2  # the L4 pools of both AWS regions
    classes = {c.inputs["metadata"]["name"]: c.inputs["value"]
               for c in plan.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")}
    for placeholder in placeholders:
        pod = placeholder.inputs["spec"]["template"]["spec"]
        assert classes[pod["priorityClassName"]] < classes["llmplane-serving"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for deployment in model_servers(plan):
        if _cluster_of(deployment).startswith("aws-"):
            assert deployment.inputs["spec"]["template"]["spec"]["priorityClassName"] == "llmplane-serving"
    windows = [s for s in plan.of_type(SCALED_OBJECT) if s.inputs["metadata"]["name"] == "warm-headroom-inference"]
    (trigger,) = windows[0].inputs["spec"]["triggers"]
    assert trigger["type"] == "cron"
    assert trigger["metadata"]["start"] == "0 8 * * 1-5"
    assert trigger["metadata"]["desiredReplicas"] == "2"  # 0 slots outside the window, +2 in it


def test_a_version_at_zero_replicas_is_woken_by_requests_the_gateway_holds():
    plan = plan_of("dev")
    (route,) = plan.of_type("kubernetes:http.keda.sh/v1beta1:InterceptorRoute")
    model = plan.spec.models["llama-3-8b"]
    cluster = plan.spec.clusters[0]
    startup = model.startup_on(cluster.cloud, cluster.pools[0])
    # Held as long as a replica takes to start on a new node, as the planner derives it.
    assert route.inputs["spec"]["timeouts"]["readiness"] == f"{math.ceil(startup.cold_start_seconds)}s"
    assert route.inputs["spec"]["target"] == {"service": "llama-3-8b-v1-1-0", "port": 8000}
    (scaler,) = [s for s in plan.of_type(SCALED_OBJECT) if s.inputs["metadata"]["name"] == "llama-3-8b-v1-1-0"]
    assert scaler.inputs["spec"]["minReplicaCount"] == 0
    assert scaler.inputs["spec"]["triggers"][-1]["type"] == "external-push"
    (http_route,) = plan.of_type(HTTP_ROUTE)
    (backend,) = http_route.inputs["spec"]["rules"][-1]["backendRefs"]
    assert backend["name"] == "keda-add-ons-http-interceptor-proxy"
    policy = named(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "llama-3-8b-v1-1-0")[0]
    sources = {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for s in policy.inputs["spec"]["ingress"][0]["from"] if "namespaceSelector" in s}
    assert "keda" in sources, "the interceptor forwards the held requests"


def test_without_scale_to_zero_no_request_goes_through_the_interceptor():
    plan = plan_with("dev", lambda values: values["llmplane:autoscaling"].update(scaleToZero=False))
    assert not plan.of_type("kubernetes:http.keda.sh/v1beta1:InterceptorRoute")
    backends = [b["name"] for r in plan.of_type(HTTP_ROUTE) for rule in r.inputs["spec"]["rules"]
                for b in rule["backendRefs"]]
    assert "keda-add-ons-http-interceptor-proxy" not in backends
