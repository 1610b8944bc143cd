"""VllmService: one model version served by vLLM in one cluster, hardened and observable."""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.labels import k8s_labels
from llmplane.components.network_policy import CREDENTIAL_ENDPOINTS, JAEGER_PODS, pods
from llmplane.components.options import children_of
from llmplane.facts.kubernetes import GPU_RESOURCE, GPU_TAINT_KEY, GPU_TYPE_LABEL
from llmplane.facts.namespaces import GATEWAY_NAMESPACE

from .engine_args import EXTRAS_DIR, VLLM_PORT, EngineSettings, serve_args, served_name
from .model_cache import SERVING_UID, vllm_volumes
from .streaming import GATE_PORT, gate_probe, launch_command, launch_env, stream_source, streamer_args

"""Node label every GPU pool sets (Karpenter NodePool, GKE node pool, or the on-prem operator)."""

MONITORING_NAMESPACE = "monitoring"
VLLM_PODS = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/component": "model-server"}
"""Labels every vLLM pod carries (k8s_labels of VllmService): what Jaeger admits traces from."""
TRACES_FLAG = "--otlp-traces-endpoint"
ENTRYPOINT_DIR = "/opt/llmplane"
API_KEY_DIR = "/var/run/secrets/llmplane"
STORAGE_DIR = "/var/run/secrets/llmplane-storage"
STORAGE_ENV = {"aws-credentials": "AWS_SHARED_CREDENTIALS_FILE",
               "gcp-service-account.json": "GOOGLE_APPLICATION_CREDENTIALS"}
"""The variable each client library reads to find its credential file."""
PRE_STOP_SECONDS = 15
"""Time for endpoints to drop the pod before vLLM stops taking requests."""

_DRAIN = (
    "import time,urllib.request as u\n"
    "end=time.time()+{budget}\n"
    "while time.time()<end:\n"
    "  try: m=u.urlopen('http://127.0.0.1:{port}/metrics',timeout=2).read().decode()\n"
    "  except Exception: break\n"
    "  busy=[l for l in m.splitlines() if l.startswith('vllm:num_requests_running') and not l.endswith(' 0.0')]\n"
    "  if not busy: break\n"
    "  time.sleep(2)\n"
)
"""preStop hook: wait (bounded) until vLLM reports no running request, so in-flight generations finish."""


@dataclass(frozen=True)
class ModelWeights:
    """One immutable model version's weights, as this cluster fetches them."""

    uri: str
    """Where the archive is fetched from: s3://, gs:// or https:// (the cloud's mirror, already chosen)."""
    sha256: str
    """Digest of the archive; the entrypoint refuses to serve anything else."""
    size_bytes: float
    """Bytes the weights take in GPU memory, all shards together: sizes host memory and the pod's disk cache."""
    load_seconds: int = 600
    """Worst-case download and load time: sizes the startup probe and the rollout deadline."""


@dataclass(frozen=True)
class VerifiedLoading:
    """Weights loaded by the launcher (`weights_cache.py launch`) from the pool's node cache, once the node's
    prefetch has checked every file against the catalog's digest as it wrote it.

    A replica never reads object storage: the prefetch reads each object once per node, and vLLM (with the Run:ai
    streamer for streamed versions) reads the verified copy from local disk. Streaming from object storage instead
    would read every object twice, once for vLLM and once more to hash it, since the streamer verifies nothing."""

    files: Mapping[str, str]
    """sha256 of each file of the version, by its name in the version's folder; empty: the archive's digest
    (`ModelWeights.sha256`), unpacked by the node cache's prefetch."""
    stream_uri: str | None = None
    """The version's folder in object storage when vLLM loads it with the Run:ai streamer (the prefetch reads it;
    the streamer reads the node's verified copy); None: vLLM's own loader reads the node's unpacked archive."""
    node_cache_path: str | None = None
    """Host folder of the pool's node cache (the prefetch DaemonSet fills it)."""
    compile_cache: bool = False
    """Seed and publish vLLM's compile cache on the node cache, so a restart does not recompile."""
    concurrency: int = 16
    """Streamer reader threads."""
    streamer_distributed: bool = False
    """The engine release's streamer loader reads the `distributed` extra-config key: with tensor parallel > 1 the
    ranks then share the reading of the files (`streaming.streamer_args`)."""
    weights_version: str | None = None
    """The catalog version whose weights the node cache holds for this one (`weightsOf`); None: its own."""

    def __post_init__(self) -> None:
        if self.node_cache_path is None:
            raise ValueError("VerifiedLoading: give node_cache_path; weights are verified only as the node cache's "
                             "prefetch writes them, and a replica loads the verified copy (streaming from object "
                             "storage would read every object twice: once to load, once to hash)")
        if self.stream_uri is not None:
            stream_source(self.stream_uri)  # refuse, at plan time, a folder the prefetch cannot read


ENGINE_RELEASE_ANNOTATION = "llmplane.dev/engine-release"
"""The Deployment annotation naming the vLLM release its pods run."""


@dataclass(frozen=True)
class ExtraWeights:
    """A verified archive a version serves beside its weights: a LoRA adapter (`lora-<name>`) or its speculative
    draft (`draft`), unpacked into `engine_args.extra_dir(folder)` before vLLM starts."""

    folder: str
    uri: str
    sha256: str
    size_bytes: float


@dataclass(frozen=True)
class VllmServiceArgs:
    """What one VllmService needs: the model version, its weights and engine, and where to run it."""

    model_name: str
    """Model name clients call (`/<model>/v1/...`) and metrics carry."""
    version: str
    """The model version served, e.g. `1.1.0`."""
    weights: ModelWeights
    """The version's weights."""
    gpu_type: str
    """GPU type the pods must land on (`llmplane.dev/gpu-type` node label)."""
    namespace: pulumi.Input[str]
    """Namespace to deploy into."""
    image: pulumi.Input[str]
    """Serving image, by digest."""
    api_key_secret: pulumi.Input[str]
    """Name of the Kubernetes Secret holding the API key under `api-key`."""
    entrypoint_configmap: pulumi.Input[str]
    """Name of the ConfigMap with `entrypoint.py`, which fetches and verifies weights then execs vllm serve."""
    engine: EngineSettings = EngineSettings()
    """vLLM engine settings."""
    engine_release: str | None = None
    """The vLLM release the image runs, recorded on the Deployment so a review can tell an engine upgrade."""
    replicas: int | None = 1
    """Fixed replica count; None when an autoscaler owns it: `spec.replicas` is then left out, so `pulumi up`
    never fights the autoscaler."""
    storage_secret: pulumi.Input[str] | None = None
    """Secret with object-storage credential files for the weights fetcher (on-prem); None: workload identity."""
    storage_files: tuple[str, ...] = ()
    """File names in that Secret: `aws-credentials` and/or `gcp-service-account.json`."""
    service_monitor: bool = True
    """Create a Prometheus Operator ServiceMonitor (needs its CRD in the cluster)."""
    cloud: str = "onprem"
    """The cluster's cloud (aws, gcp, onprem): which workload-identity endpoint the pods may reach."""
    service_account_annotations: Mapping[str, pulumi.Input[str]] | None = None
    """Annotations of the pod's service account (GKE Workload Identity binds a Google service account so)."""
    generation_seconds: int = 300
    """Longest generation to let finish when a pod stops."""
    loading: VerifiedLoading | None = None
    """How the weights load; None: the entrypoint downloads the archive into the pod and checks its digest."""
    priority_class: str | None = None
    """PriorityClass of the pods (above warm-headroom placeholders, which they then preempt)."""
    extra_args: tuple[str, ...] = ()
    """More `vllm serve` flags, e.g. tracing's `--otlp-traces-endpoint`."""
    admit_namespaces: tuple[str, ...] = ()
    """Namespaces admitted to the vLLM port besides the gateway's and monitoring's (e.g. KEDA's HTTP interceptor)."""
    admit_pods: Sequence[Mapping[str, str]] = ()
    """Labels of pods in the serving namespace admitted to the vLLM port: the endpoint pickers, which read each
    replica's `/metrics` to score it."""
    extras: tuple[ExtraWeights, ...] = ()
    """LoRA adapters and a speculative draft, fetched and verified by the pod before vLLM starts."""


def pod_selector(model: str, version: str) -> dict[str, str]:
    """Labels selecting a model version's vLLM pods (its Service's, PodDisruptionBudget's and InferencePool's)."""
    return {"app.kubernetes.io/instance": resource_name(model, version), "llmplane.dev/model": model,
            "llmplane.dev/model-version": version}


def resource_name(model: str, version: str) -> str:
    """Kubernetes name of a model version's objects, e.g. `llama-3-8b-v1-1-0`."""
    return f"{model}-v{version.replace('.', '-').replace('+', '-')}".lower()[:63].rstrip("-")


def _memory_gi(args: VllmServiceArgs) -> int:
    """Host memory a replica needs: the weights pass through it while loading, plus room for the server, plus the
    KV cache it offloads to host memory (vLLM pins that buffer at start)."""
    return replica_memory_gi(args.weights.size_bytes, args.engine.tensor_parallel_size) + \
        math.ceil(args.engine.kv_offload_gib or 0)


def _cache_gi(args: VllmServiceArgs) -> int:
    """Node-local cache: the archive and the unpacked weights side by side."""
    return math.ceil(args.weights.size_bytes / 2**30 * 2.2) + 2


def _disk_volumes(args: VllmServiceArgs) -> dict[str, int]:
    """The pod's disk-backed emptyDirs and their size limits in GiB: the downloaded weights (unless the node cache
    or the streamer provides them), /tmp, vLLM's caches."""
    weights = {} if args.loading else {"model-cache": _cache_gi(args) + _extras_gi(args)}
    extras = {"extra-weights": _extras_gi(args)} if args.loading and args.extras else {}
    return {**weights, **extras, "tmp": 4, "cache": 8}


def _extras_gi(args: VllmServiceArgs) -> int:
    """Room for the extras: each archive and its unpacked copy."""
    return math.ceil(sum(extra.size_bytes for extra in args.extras) * 2.2 / 2**30) if args.extras else 0


def replica_memory_gi(size_bytes: float, tensor_parallel_size: int) -> int:
    """Host memory one replica requests, in GiB (warm-headroom placeholders hold the same)."""
    return max(16, math.ceil(size_bytes / 2**30 * 1.2 / tensor_parallel_size) + 8)




def egress_rules(weights_uri: str, cloud: str, traces_endpoint: str | None = None) -> list[dict]:
    """What a vLLM pod may reach: DNS, the weights source over TLS (object storage or the https mirror, whose
    addresses are not fixed, so by port), its cloud's credential endpoint, and Jaeger's OTLP port when it sends
    traces (`traces_endpoint`, in the monitoring namespace). Nothing else: no other pod, no port of the node, no
    arbitrary internet service."""
    port = urllib.parse.urlsplit(weights_uri).port or 443
    rules = [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
         "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": port, "protocol": "TCP"}]},
    ]
    if cloud in CREDENTIAL_ENDPOINTS:
        rules.append({"to": [{"ipBlock": {"cidr": CREDENTIAL_ENDPOINTS[cloud]}}],
                      "ports": [{"port": 80, "protocol": "TCP"}]})
    if traces_endpoint is not None:
        rules.append({"to": [pods(MONITORING_NAMESPACE, JAEGER_PODS)],
                      "ports": [{"port": urllib.parse.urlsplit(traces_endpoint).port or 4317, "protocol": "TCP"}]})
    return rules


def traces_endpoint(extra_args: Sequence[str]) -> str | None:
    """The OTLP endpoint `vllm serve` sends traces to, from its extra flags, or None."""
    flags = list(extra_args)
    return flags[flags.index(TRACES_FLAG) + 1] if TRACES_FLAG in flags[:-1] else None


@dataclass(frozen=True)
class _Load:
    """How the vLLM container starts and where its weights come from."""

    command: list[str]
    args: list[str]
    env: dict[str, str]
    volumes: list[dict]
    mounts: list[dict]


def _loading(args: VllmServiceArgs) -> _Load:
    """The download path (the entrypoint fetches and checks the archive into the pod's emptyDir), or the launcher
    that waits for the node cache's verified copy and loads it, with vLLM's streamer flags for streamed versions."""
    flags = [*serve_args(args.model_name, args.version, args.engine), *args.extra_args]
    loading = args.loading
    if loading is None:
        return _Load(["python3", f"{ENTRYPOINT_DIR}/entrypoint.py"], flags,
                     {"LLMPLANE_MODEL_URI": args.weights.uri, "LLMPLANE_MODEL_SHA256": args.weights.sha256,
                      "LLMPLANE_MODEL_CACHE": "/models", **_extras_env(args)},
                     [], [{"name": "model-cache", "mountPath": "/models"}])
    streamer = (streamer_args(loading.concurrency, tensor_parallel_size=args.engine.tensor_parallel_size,
                              streamer_distributed=loading.streamer_distributed) if loading.stream_uri else ())
    cache = vllm_volumes(str(loading.node_cache_path), args.model_name, args.version, loading.compile_cache,
                         loading.weights_version)
    env = launch_env(dict(loading.files), cache.node_cache_dir, cache.compile_cache_dir, None,
                     None if loading.files else args.weights.sha256) | _extras_env(args)
    # The launcher names the model folder (the verified node cache): flags after the model only.
    # The API key file and any credential files are in the container's common environment already.
    mounts = [{"name": "extra-weights", "mountPath": EXTRAS_DIR}] if args.extras else []
    return _Load(launch_command(ENTRYPOINT_DIR), [*flags[1:], *streamer], env, cache.volumes, cache.mounts + mounts)


def _extras_env(args: VllmServiceArgs) -> dict[str, str]:
    """Where the entrypoint or the launcher fetches the version's extras from, with their digests."""
    if not args.extras:
        return {}
    extras = {extra.folder: {"uri": extra.uri, "sha256": extra.sha256} for extra in args.extras}
    return {"LLMPLANE_EXTRA_WEIGHTS": json.dumps(extras, sort_keys=True), "LLMPLANE_EXTRAS_DIR": EXTRAS_DIR}


WRITABLE_LAYER_GI = 2
"""Container logs and the (read-only root's) writable layer, on top of the emptyDirs."""
LIVENESS_SILENCE_SECONDS = 180
"""How long /health may go unanswered before the server counts as wedged and is restarted."""


class VllmService(pulumi.ComponentResource):
    """Deployment, Service, PodDisruptionBudget, NetworkPolicy and ServiceMonitor of one model version."""

    deployment_name: pulumi.Output[str]
    """Name of the Deployment (autoscalers target it)."""
    service_name: pulumi.Output[str]
    """Name of the ClusterIP Service (routes send traffic to it)."""
    served_model_name: pulumi.Output[str]
    """Name clients and metrics use: `<model>:<version>`."""

    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:VllmService", name, None, opts)
        child = children_of(self, opts)
        version = args.version
        kname = resource_name(args.model_name, version)
        labels = k8s_labels(
            name="vllm",
            instance=kname,
            component="model-server",
            version=version,
            model=args.model_name,
            model_version=version,
        )
        selector = pod_selector(args.model_name, version)
        meta = {"name": kname, "namespace": args.namespace, "labels": labels}
        gpus = args.engine.tensor_parallel_size

        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata={**meta, **({"annotations": dict(args.service_account_annotations)}
                                               if args.service_account_annotations else {})},
            automount_service_account_token=False, opts=child
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={**meta, "annotations": {"llmplane.dev/weights-sha256": args.weights.sha256,
                                              **({ENGINE_RELEASE_ANNOTATION: args.engine_release}
                                                 if args.engine_release else {})}},
            spec={
                **({} if args.replicas is None else {"replicas": args.replicas}),
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "progressDeadlineSeconds": args.weights.load_seconds + 600,
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {"kubectl.kubernetes.io/default-container": "vllm"},
                    },
                    "spec": self._pod_spec(args, kname, labels, gpus, account.metadata.name),
                },
            },
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta,
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta,
            spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}},
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta,
            spec={
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {
                        "from": [
                            *({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                              for ns in (GATEWAY_NAMESPACE, MONITORING_NAMESPACE, *args.admit_namespaces)),
                            *({"podSelector": {"matchLabels": dict(labels)}} for labels in args.admit_pods),
                        ],
                        "ports": [{"port": VLLM_PORT, "protocol": "TCP"}],
                    }
                ],
                "egress": egress_rules(args.weights.uri, args.cloud, traces_endpoint(args.extra_args)),
            },
            opts=child,
        )
        if args.service_monitor:
            k8s.apiextensions.CustomResource(
                f"{name}-servicemonitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata=meta,
                spec={
                    "selector": {"matchLabels": selector},
                    "endpoints": [
                        {
                            "port": "http",
                            "path": "/metrics",
                            "interval": "15s",
                            "relabelings": [
                                {"sourceLabels": ["__meta_kubernetes_pod_label_llmplane_dev_model"],
                                 "targetLabel": "model"},
                                {"sourceLabels": ["__meta_kubernetes_pod_label_llmplane_dev_model_version"],
                                 "targetLabel": "version"},
                            ],
                        }
                    ],
                },
                opts=child,
            )

        self.deployment_name = deployment.metadata.name
        self.service_name = service.metadata.name
        self.served_model_name = pulumi.Output.from_input(served_name(args.model_name, version))
        self.register_outputs(
            {
                "deployment_name": self.deployment_name,
                "service_name": self.service_name,
                "served_model_name": self.served_model_name,
            }
        )

    @staticmethod
    def _pod_spec(
        args: VllmServiceArgs, kname: str, labels: dict[str, str], gpus: int, account: pulumi.Input[str]
    ) -> dict:
        """The hardened pod: GPUs requested = limits, probes sized to load time, read-only root, drain on stop."""
        memory = f"{_memory_gi(args)}Gi"
        cpu = str(4 * gpus)
        disk = _disk_volumes(args)
        ephemeral = sum(disk.values()) + WRITABLE_LAYER_GI
        resources = {"cpu": cpu, "memory": memory, GPU_RESOURCE: str(gpus), "ephemeral-storage": f"{ephemeral}Gi"}
        drain_budget = args.generation_seconds
        probe = {"httpGet": {"path": "/health", "port": "http"}}
        spread_selector = {"matchLabels": {"app.kubernetes.io/instance": kname}}
        load = _loading(args)
        startup_probe = {**(gate_probe() if args.loading else probe), "timeoutSeconds": 5, "periodSeconds": 10,
                         "failureThreshold": math.ceil(args.weights.load_seconds / 10) + 6}
        return {
            "serviceAccountName": account,
            "automountServiceAccountToken": False,
            **({"priorityClassName": args.priority_class} if args.priority_class else {}),
            "terminationGracePeriodSeconds": PRE_STOP_SECONDS + drain_budget + 30,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": SERVING_UID,
                "runAsGroup": SERVING_UID,
                "fsGroup": SERVING_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [
                                {"key": GPU_TYPE_LABEL, "operator": "In", "values": [args.gpu_type]}
                            ]}
                        ]
                    }
                }
            },
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
                 "labelSelector": spread_selector}
                for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
            ],
            "containers": [
                {
                    "name": "vllm",
                    "image": args.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": load.command,
                    "args": load.args,
                    "env": [
                        *({"name": key, "value": value} for key, value in load.env.items()),
                        {"name": "HOME", "value": "/tmp/home"},
                        {"name": "XDG_CACHE_HOME", "value": "/var/cache/vllm"},
                        {"name": "HF_HUB_OFFLINE", "value": "1"},
                        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
                        {"name": "LLMPLANE_API_KEY_FILE", "value": f"{API_KEY_DIR}/api-key"},
                        *({"name": STORAGE_ENV[file], "value": f"{STORAGE_DIR}/{file}"}
                          for file in args.storage_files),
                    ],
                    "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"},
                              *([{"name": "gate", "containerPort": GATE_PORT, "protocol": "TCP"}]
                                if args.loading else [])],
                    "resources": {"requests": resources, "limits": resources},
                    "startupProbe": startup_probe,
                    # Readiness reacts in seconds: a replica that cannot answer leaves the rotation at once. With
                    # the launcher it also waits for every weight file's digest to match.
                    "readinessProbe": {**(gate_probe() if args.loading else probe), "timeoutSeconds": 3,
                                       "periodSeconds": 5, "failureThreshold": 2},
                    # Liveness restarts only a wedged server: a busy engine answers /health late, not never, so
                    # it must stay silent for LIVENESS_SILENCE_SECONDS before the kubelet restarts it.
                    "livenessProbe": {**probe, "timeoutSeconds": 20, "periodSeconds": 30,
                                      "failureThreshold": LIVENESS_SILENCE_SECONDS // 30},
                    "lifecycle": {
                        "preStop": {"exec": {"command": [
                            "python3", "-c",
                            f"import time; time.sleep({PRE_STOP_SECONDS})\n"
                            + _DRAIN.format(budget=drain_budget, port=VLLM_PORT),
                        ]}}
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "privileged": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        *load.mounts,
                        {"name": "dshm", "mountPath": "/dev/shm"},
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "cache", "mountPath": "/var/cache/vllm"},
                        {"name": "entrypoint", "mountPath": ENTRYPOINT_DIR, "readOnly": True},
                        {"name": "api-key", "mountPath": API_KEY_DIR, "readOnly": True},
                        *([{"name": "storage-credentials", "mountPath": STORAGE_DIR, "readOnly": True}]
                          if args.storage_secret is not None else []),
                    ],
                }
            ],
            "volumes": [
                *({"name": name, "emptyDir": {"sizeLimit": f"{size}Gi"}} for name, size in disk.items()),
                *load.volumes,
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{max(2, 4 * gpus)}Gi"}},
                {"name": "entrypoint", "configMap": {"name": args.entrypoint_configmap, "defaultMode": 0o555}},
                {"name": "api-key", "secret": {"secretName": args.api_key_secret, "defaultMode": 0o400}},
                *([{"name": "storage-credentials", "secret": {"secretName": args.storage_secret, "defaultMode": 0o400}}]
                  if args.storage_secret is not None else []),
            ],
        }
