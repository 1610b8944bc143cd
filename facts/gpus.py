"""Facts about GPUs: memory, bytes per weight, and what a GPU-hour costs.

A snapshot kept in code so that validation, the components and the capacity planner need no cloud API.
Sources: NVIDIA data sheets (GPU memory); AWS EC2 on-demand pricing (GPU-hour prices, see below).
"""

from __future__ import annotations

GPU_MEMORY_GB: dict[str, float] = {
    "nvidia-l4": 24,
    "nvidia-a10g": 24,
    "nvidia-l40s": 48,
    "nvidia-a100-40gb": 40,
    "nvidia-a100-80gb": 80,
    "nvidia-h100-80gb": 80,
    "nvidia-h200-141gb": 141,
}
"""Memory of one GPU, in GB (10^9 bytes), per GPU type."""

BYTES_PER_PARAMETER: dict[str, float] = {
    "float32": 4,
    "bfloat16": 2,
    "float16": 2,
    "fp8": 1,
    "int8": 1,
    "int4": 0.5,
}
"""Bytes that one weight takes in memory, per dtype."""

KV_CACHE_BYTES_PER_VALUE: dict[str, float] = {
    "float32": 4,
    "bfloat16": 2,
    "float16": 2,
    "fp8": 2,
    "int8": 2,
    "int4": 2,
}
"""Bytes of one key or value element in vLLM's KV cache, per weight dtype, under vLLM's default `--kv-cache-dtype
auto`: the cache takes the model's activation dtype (vllm/utils/torch_utils.py `kv_cache_dtype_str_to_dtype`:
"auto" is the model config's dtype), which is 16-bit for 16-bit and quantized (fp8, int8, int4) weights alike and
32-bit only for float32 models."""

GPU_HOUR_USD: dict[str, float] = {
    "nvidia-l4": 0.98,
    "nvidia-a10g": 1.21,
    "nvidia-l40s": 1.86,
    "nvidia-a100-40gb": 2.75,
    "nvidia-a100-80gb": 3.43,
    "nvidia-h100-80gb": 6.88,
    "nvidia-h200-141gb": 7.91,
}
"""On-demand price of one GPU-hour in us-east-1: the single-GPU instance's hourly price (g6.xlarge, g5.xlarge,
g6e.xlarge) or the 8-GPU instance's price divided by 8 (p4d, p4de, p5, p5e), AWS EC2 on-demand pricing page,
2025-2026 list prices. Used for cost estimates only; a pool's `gpuHourUsd` overrides it."""

DENSE_BF16_TFLOPS: dict[str, float] = {
    "nvidia-l4": 121,
    "nvidia-a10g": 70,
    "nvidia-l40s": 362,
    "nvidia-a100-40gb": 312,
    "nvidia-a100-80gb": 312,
    "nvidia-h100-80gb": 989,
    "nvidia-h200-141gb": 989,
}
"""Dense (no sparsity) BF16 tensor throughput of one GPU, TFLOPS: NVIDIA data sheets (L4, L40S, A100, H100 SXM,
H200 SXM: half the "with sparsity" figures); the A10G, AWS's variant of the A10, at the ~70 TFLOPS AWS and
benchmarks report for it. Prefill is compute bound, so the planner scales a profile's prefill rate by these
ratios when it suggests another GPU (an estimate: memory, kernels and batch shape shift it)."""

COMPUTE_CAPABILITY: dict[str, float] = {
    "nvidia-l4": 8.9,
    "nvidia-a10g": 8.6,
    "nvidia-l40s": 8.9,
    "nvidia-a100-40gb": 8.0,
    "nvidia-a100-80gb": 8.0,
    "nvidia-h100-80gb": 9.0,
    "nvidia-h200-141gb": 9.0,
}
"""CUDA compute capability per GPU type (NVIDIA's "CUDA GPUs - Compute Capability" table: Ada L4/L40S 8.9, A10G
8.6, A100 8.0, Hopper H100/H200 9.0)."""

FP8_KV_MIN_CAPABILITY = 8.9
"""An fp8 KV cache needs native FP8: vLLM's Triton attention backend refuses `--kv-cache-dtype fp8*` below SM89
("native FP8 (fp8e4nv) requires SM89+", vllm/v1/attention/backends/triton_attn.py in 0.34.0), and FlashAttention
takes an fp8 cache only on SM90 (vllm/v1/attention/backends/fa_utils.py `flash_attn_supports_kv_cache_dtype`)."""

FP8_KV_BYTES_PER_VALUE = 1
"""Bytes of one key or value element of an fp8 KV cache: half of a 16-bit cache, so twice the tokens fit."""

HBM_GB_PER_SECOND: dict[str, float] = {
    "nvidia-l4": 300,
    "nvidia-a10g": 600,
    "nvidia-l40s": 864,
    "nvidia-a100-40gb": 1555,
    "nvidia-a100-80gb": 2039,
    "nvidia-h100-80gb": 3350,
    "nvidia-h200-141gb": 4800,
}
"""Peak memory bandwidth of one GPU, GB/s: NVIDIA data sheets (L4 300 GB/s; A10 600 GB/s, which AWS's A10G
matches; L40S 864 GB/s; A100 SXM 40GB 1,555 GB/s and 80GB 2,039 GB/s; H100 SXM 3.35 TB/s; H200 SXM 4.8 TB/s). A
decode step reads the weights and the batch's KV cache once, so the planner moves a measured decode rate to another
GPU by these ratios (capacity/engine_effects.py)."""
