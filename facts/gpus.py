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
