"""Names the platform's Kubernetes objects share across layers: the GPU resource and taint, and the labels a
GPU node and a tenant's objects carry. Components write them, the embedded cluster's fake nodes carry them and the
policies read them, so each is defined once, here."""

GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource NVIDIA's device plugin advertises, and the key of the taint GPU nodes carry."""
GPU_TAINT_KEY = GPU_RESOURCE
GPU_TYPE_LABEL = "llmplane.dev/gpu-type"
"""Node label: the GPU model of a pool's nodes (e.g. nvidia-l4)."""
POOL_LABEL = "llmplane.dev/pool"
"""Node label: the GPU pool a node belongs to."""
TENANT_LABEL = "llmplane.dev/tenant"
"""Label of a tenant's gateway objects (its API-key Secret)."""
MODEL_LABEL = "llmplane.dev/model"
"""Label of a model's objects: its vLLM pods, Services and route (the routes that carry model traffic)."""
