"""One EKS GPU cluster serving one vLLM model: llmplane's components in a program of your own.

No llmplane environment file: the program picks its components and passes them plain values. It creates the VPC,
an encrypted EKS cluster with Karpenter and an L4 node pool, the serving namespace with the API key as a
Kubernetes Secret, one vLLM Deployment (with its Service, PodDisruptionBudget and NetworkPolicy), and EKS Pod
Identity so the pods read exactly their weights object in S3.
"""

import json

import pulumi
from llmplane.components.clusters.aws import AwsGpuCluster
from llmplane.components.clusters.base import ClusterArgs, GpuNodePool, WorkloadReaders
from llmplane.components.labels import Ownership
from llmplane.components.serving.engine_args import EngineSettings
from llmplane.components.serving.namespace import ServingNamespace, ServingNamespaceArgs
from llmplane.components.serving.vllm_service import ModelWeights, VllmService, VllmServiceArgs, resource_name
from llmplane.facts.engines import DEFAULT_RELEASE, RELEASES

MODEL, VERSION = "llama-3-8b", "1.0.0"

config = pulumi.Config()
cluster = AwsGpuCluster("inference", ClusterArgs(
    name="inference",
    region=config.require("region"),
    zones=json.loads(config.require("zones")),
    network_cidr="10.40.0.0/16",
    ownership=Ownership(environment="demo", owner="team-search", cost_center="4711"),
    pools=[GpuNodePool(name="l4", gpu_type="nvidia-l4", gpus_per_node=1, nodes_min=0, nodes_max=4)],
))
on_cluster = pulumi.ResourceOptions(provider=cluster.provider)
serving = ServingNamespace("serving", ServingNamespaceArgs(api_key=config.require_secret("apiKey"),
                                                          name="search"), opts=on_cluster)
weights_uri = config.require("weightsUri")
cluster.bind_workload_identity("weights", WorkloadReaders(
    namespace="search", service_accounts=[resource_name(MODEL, VERSION)], uris=[weights_uri]))
service = VllmService("llama", VllmServiceArgs(
    model_name=MODEL,
    version=VERSION,
    weights=ModelWeights(uri=weights_uri, sha256=config.require("weightsSha256"), size_bytes=16e9),
    gpu_type="nvidia-l4",
    namespace=serving.namespace,
    image=RELEASES[DEFAULT_RELEASE].image,
    api_key_secret=serving.api_key_secret,
    entrypoint_configmap=serving.entrypoint_configmap,
    engine=EngineSettings(max_model_len=8192),
    replicas=1,
    cloud="aws",
    service_monitor=False,
), opts=on_cluster)

pulumi.export("cluster", cluster.cluster_name)
pulumi.export("service", service.service_name)
