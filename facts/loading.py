"""Facts about how a replica gets ready: how fast weights arrive by each load path, how long a GPU node takes to
join, how long vLLM's engine needs once the weights are in GPU memory, and how much local disk each GPU machine
carries for a model cache.

The spec validates node caches against these tables and the capacity planner derives a replica's cold start from
them. Every figure names its source; where no vendor publishes the figure, the conservative end of what is
published is taken and said so. Override per model with `engineStartSeconds`, `coldStart.nodeSeconds` and
`coldStart.imagePullSeconds` when measurements of your own exist.
"""

from __future__ import annotations

GIB = 2**30
"""Bytes in a GiB."""

STREAMER_OBJECT_STORE_BYTES_PER_SECOND = 3.51 * GIB
"""Run:ai Model Streamer reading Meta-Llama-3-8B (bf16 safetensors) from AWS S3 into GPU memory on a g5.12xlarge
(40 Gbit/s network): 4.24 s, 3.51 GiB/s (run-ai/runai-model-streamer, docs/src/benchmarks.md, streamer 0.6.0).
On machines with less network bandwidth the network caps it (`NETWORK_GBIT_PER_SECOND`)."""

LOCAL_DISK_BYTES_PER_SECOND: dict[str, float] = {
    "nvme": 1.03 * GIB,
    "local-ssd": 660 * 2**20,
    "host-path": 0.5 * GIB,
}
"""Sequential read rate of a node cache, by medium.

- nvme (AWS instance store, RAID0): AWS publishes no sequential read rate for instance store volumes; taken as the
  floor the same Run:ai benchmark measured from an EBS gp3 volume (1.03 GiB/s, gp3's 1,000 MiB/s cap), which an
  instance-store NVMe SSD is not slower than.
- local-ssd (GKE): one 375 GiB NVMe local SSD reads 660 MiB/s (Google Cloud, "Local SSD performance" table);
  pools with more local SSDs read faster, so this is the floor.
- host-path (on-prem): the disk is the site's; taken as a SATA SSD's 6 Gbit/s link (~0.5 GiB/s of data), the
  slowest SSD a GPU server ships with.
"""

NETWORK_GBIT_PER_SECOND: dict[str, float] = {
    "g5.xlarge": 10, "g5.12xlarge": 40, "g5.48xlarge": 100,
    "g6.xlarge": 10, "g6.12xlarge": 40, "g6.48xlarge": 100,
    "g6e.xlarge": 20, "g6e.12xlarge": 100, "g6e.48xlarge": 400,
    "p4d.24xlarge": 400, "p4de.24xlarge": 400, "p5.48xlarge": 3200, "p5e.48xlarge": 3200,
    "g2-standard-8": 16, "g2-standard-24": 32, "g2-standard-48": 50, "g2-standard-96": 100,
    "a2-highgpu-1g": 24, "a2-highgpu-2g": 32, "a2-highgpu-4g": 50, "a2-highgpu-8g": 100,
    "a2-ultragpu-1g": 24, "a2-ultragpu-2g": 32, "a2-ultragpu-4g": 50, "a2-ultragpu-8g": 100,
    "a3-highgpu-1g": 25, "a3-highgpu-2g": 50, "a3-highgpu-4g": 100, "a3-highgpu-8g": 200, "a3-ultragpu-8g": 200,
}
"""Network bandwidth of a GPU machine, Gbit/s: AWS "Accelerated computing instances" network performance ("up to"
figures for the small sizes, which hold for the minutes a weight load takes) and Google Cloud "GPU machine types"
maximum egress bandwidth. Weights streamed from object storage arrive no faster than this."""

ONPREM_NETWORK_GBIT_PER_SECOND = 25.0
"""An on-prem GPU server's link to the site's S3-compatible mirror, assumed 25 GbE (no vendor figure applies)."""

INSTANCE_STORE_GB: dict[str, float] = {
    "g5.xlarge": 250, "g5.12xlarge": 3800, "g5.48xlarge": 7600,
    "g6.xlarge": 250, "g6.12xlarge": 3760, "g6.48xlarge": 7520,
    "g6e.xlarge": 250, "g6e.12xlarge": 3800, "g6e.48xlarge": 7600,
    "p4d.24xlarge": 8000, "p4de.24xlarge": 8000, "p5.48xlarge": 30720, "p5e.48xlarge": 30720,
}
"""NVMe instance store of an AWS GPU machine, all volumes together (what a RAID0 of them holds), GB (10^9 bytes):
AWS "Instance store volume limits for EC2 instances" table. A node cache of medium nvme must fit in it."""

NODE_JOIN_SECONDS = 180
"""A new GPU node from request to schedulable: Karpenter or the cluster autoscaler launching the machine, the
kubelet joining, the NVIDIA driver and device plugin advertising the GPU. An estimate of three minutes, the
figure the shipped environments have used since issue 5; measure your own with the node's Ready condition."""

ENGINE_START_SECONDS = 60
"""vLLM's start once the weights are in GPU memory, with nothing cached: torch.compile of the model (Inductor),
CUDA graph capture for the batch sizes, KV-cache profiling and allocation. vLLM's torch.compile design page shows
a 1B Llama compiling in tens of seconds and capturing graphs in seconds; an 8B model's compile and graphs take
longer, so one minute is taken. An estimate: `engineStartSeconds` overrides it per model."""

COMPILE_CACHE_SAVES = 2 / 3
"""Share of the engine start a warm compile cache removes: with vLLM's torch.compile cache
(`~/.cache/vllm/torch_compile_cache`, reused when the model, config and PyTorch are unchanged, per vLLM's
torch.compile design page) the compile step becomes a load of the compiled artifacts; graph capture and KV-cache
profiling remain. Taken as two thirds of the start (the compile's share); an estimate."""


def network_bytes_per_second(machine_type: str | None) -> float:
    """The network rate of a machine (bytes/s): the table's, or the on-prem assumption for machines we don't know."""
    gbit = NETWORK_GBIT_PER_SECOND.get(machine_type or "", ONPREM_NETWORK_GBIT_PER_SECOND)
    return gbit * 1e9 / 8


def stream_bytes_per_second(machine_type: str | None) -> float:
    """How fast the model streamer brings weights from object storage to a machine: the streamer's published rate,
    capped by the machine's network."""
    return min(STREAMER_OBJECT_STORE_BYTES_PER_SECOND, network_bytes_per_second(machine_type))


NODE_CACHE_ROOTS: dict[str, str] = {
    "nvme": "/mnt/k8s-disks/0/llmplane-model-cache",
    "local-ssd": "/mnt/stateful_partition/kube-ephemeral-ssd/llmplane-model-cache",
}
"""Host folder of the node cache on a cloud node's local disks, by medium.

- nvme: Karpenter's `instanceStorePolicy: RAID0` has the AL2023 node join its instance-store NVMe volumes into
  one RAID0 array mounted under /mnt/k8s-disks/0, which also backs the kubelet's and containerd's folders
  (Karpenter "NodeClasses" docs, instanceStorePolicy; amazon-eks-ami nodeadm local storage setup).
- local-ssd: GKE's ephemeral-storage local SSDs (`ephemeral_storage_local_ssd_config`) are mounted at
  /mnt/stateful_partition/kube-ephemeral-ssd on the node (GKE "Provision ephemeral storage with local SSDs").
On-prem, the spec's `nodeCache.path` names the folder."""

