"""A canary rollout onto a cluster that already exists: the stable and the canary version of a model, and the
HTTPRoute that splits traffic between them by weight.

The cluster is reached by its kubeconfig (an OnPremGpuCluster deploys into any cluster it is given); the Gateway
the route attaches to is the cluster's own (config `gatewayName`/`gatewayNamespace`). A rollout step is one
config edit, `pulumi config set canaryWeight 50`, which previews as a change of the route's weights only.
"""

from pathlib import Path

import pulumi
from llmplane.components.clusters.base import ClusterArgs
from llmplane.components.clusters.onprem import OnPremGpuCluster
from llmplane.components.labels import Ownership
from llmplane.components.serving.model_rollout import ModelRollout, ModelRolloutArgs, RolloutVersion
from llmplane.components.serving.namespace import ServingNamespace, ServingNamespaceArgs
from llmplane.components.serving.vllm_service import ModelWeights, VllmService, VllmServiceArgs
from llmplane.facts.engines import DEFAULT_RELEASE, RELEASES

MODEL = "qwen-2-7b"
VERSIONS = {
    "1.0.0": ("https://models.example.com/qwen-2-7b/1.0.0/weights.tar",
              "a3f1c2e4b5d6978812a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f801"),
    "1.1.0": ("https://models.example.com/qwen-2-7b/1.1.0/weights.tar",
              "b4e2d3f5c6a7089923b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80912"),
}
STABLE, CANARY = "1.0.0", "1.1.0"

config = pulumi.Config()
kubeconfig = Path(config.require("kubeconfigPath")).expanduser().read_text()
cluster = OnPremGpuCluster("existing", ClusterArgs(
    name="existing", region="site", ownership=Ownership(environment="demo", owner="team-recsys", cost_center="42"),
    kubeconfig=pulumi.Output.secret(kubeconfig)))
on_cluster = pulumi.ResourceOptions(provider=cluster.provider)
namespace = config.require("namespace")
serving = ServingNamespace("serving", ServingNamespaceArgs(api_key=config.require_secret("apiKey"), name=namespace),
                           opts=on_cluster)
canary_weight = config.require_int("canaryWeight")
for version, (uri, sha256) in VERSIONS.items():
    VllmService(f"{MODEL}-{version}", VllmServiceArgs(
        model_name=MODEL,
        version=version,
        weights=ModelWeights(uri=uri, sha256=sha256, size_bytes=15e9),
        gpu_type=config.require("gpuType"),
        namespace=serving.namespace,
        image=RELEASES[DEFAULT_RELEASE].image,
        api_key_secret=serving.api_key_secret,
        entrypoint_configmap=serving.entrypoint_configmap,
        replicas=1,
        service_monitor=False,
    ), opts=on_cluster)
rollout = ModelRollout(MODEL, ModelRolloutArgs(
    model_name=MODEL,
    versions=[RolloutVersion(STABLE, 100 - canary_weight, "stable"), RolloutVersion(CANARY, canary_weight, "canary")],
    namespace=serving.namespace,
    hostnames=["llm.example.com"],
    gateway_name=config.require("gatewayName"),
    gateway_namespace=config.require("gatewayNamespace"),
), opts=on_cluster)

pulumi.export("route", rollout.route_name)
