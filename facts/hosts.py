"""Facts about the GPU machines' host memory, which holds offloaded KV cache.

Sources: AWS "Accelerated computing instance specifications" (memory in GiB of g5, g6, g6e, p4d, p4de, p5, p5e) and
Google Cloud "GPU machine types" (memory in GB of g2, a2 and a3 machine types; taken as GiB here, which
understates GCP's figures by 7 %, the safe side for a limit).
"""

from __future__ import annotations

HOST_MEMORY_GIB: dict[str, int] = {
    "g5.xlarge": 16, "g5.12xlarge": 192, "g5.48xlarge": 768,
    "g6.xlarge": 16, "g6.12xlarge": 192, "g6.48xlarge": 768,
    "g6e.xlarge": 32, "g6e.12xlarge": 384, "g6e.48xlarge": 1536,
    "p4d.24xlarge": 1152, "p4de.24xlarge": 1152, "p5.48xlarge": 2048, "p5e.48xlarge": 2048,
    "g2-standard-8": 32, "g2-standard-24": 96, "g2-standard-48": 192, "g2-standard-96": 384,
    "a2-highgpu-1g": 85, "a2-highgpu-2g": 170, "a2-highgpu-4g": 340, "a2-highgpu-8g": 680,
    "a2-ultragpu-1g": 170, "a2-ultragpu-2g": 340, "a2-ultragpu-4g": 680, "a2-ultragpu-8g": 1360,
    "a3-highgpu-1g": 234, "a3-highgpu-2g": 468, "a3-highgpu-4g": 936, "a3-highgpu-8g": 1872,
    "a3-ultragpu-8g": 2952,
}
"""Host memory of each GPU machine type the clouds' tables (facts/clouds.py) pick, in GiB."""

OFFLOAD_HOST_SHARE = 0.5
"""Share of a replica's part of its machine's memory that offloaded KV cache may take: the rest holds the engine
process, the tokenizer workers, the page cache the weights are read through, and the node's own daemons. Our
choice, on the safe side of vLLM's own default of no offload at all."""
