"""Weights streamed, not copied: the `vllm serve` arguments of the Run:ai Model Streamer, and where it reads.

Each byte of a version is read from object storage once per node: the node cache's prefetch
(`scripts/weights_cache.py prefetch`) downloads every file, hashing the bytes as it writes them, and the replica's
streamer then reads that verified copy from the node's local disk. The streamer verifies nothing itself, so
streaming from object storage would need a second, hashing download of the same objects beside it.

vLLM v0.14.0 streams safetensors with `--load-format runai_streamer` from local folders and from `s3://` and
`gs://` (`vllm/transformers_utils/runai_utils.py` SUPPORTED_SCHEMES); the prefetch reads an on-prem https mirror
as S3-compatible storage: `s3://<bucket>/<prefix>` plus its endpoint (`stream_source`). Where each name is read:
- `--load-format runai_streamer`, `--model-loader-extra-config`: vLLM's EngineArgs (`vllm/engine/arg_utils.py`);
  the streamer loader (`vllm/model_executor/model_loader/runai_streamer_loader.py`) reads the extra-config keys
  `concurrency` (sets RUNAI_STREAMER_CONCURRENCY), `memory_limit` (RUNAI_STREAMER_MEMORY_LIMIT) and `distributed`
  (`streamer_args`).
- VLLM_CACHE_ROOT: the root of the torch.compile cache (`vllm/compilation/backends.py`:
  `<VLLM_CACHE_ROOT>/torch_compile_cache/<hash>`, inductor and Triton caches inside it), a vLLM v0.14.0
  `vllm/envs.py` variable.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

LOAD_FORMAT = "runai_streamer"
"""vLLM's load format for the Run:ai Model Streamer."""
STREAMER_SCHEMES = ("s3://", "gs://")
"""URI schemes vLLM v0.14.0 hands to the streamer."""
SCRIPT_SOURCE = Path(__file__).resolve().parent / "scripts" / "weights_cache.py"
"""The node cache's tool (prefetch, verify, launch), shipped in ConfigMaps."""
SCRIPT_NAME = "weights_cache.py"
"""Its file name in the ConfigMaps."""
GATE_PORT = 8001
"""Port of the launcher's readiness gate: `/ready` answers 200 once vLLM, started on verified weights, is healthy."""
POD_CACHE_ROOT = "/var/cache/vllm/root"
"""VLLM_CACHE_ROOT inside the pod (on its writable cache volume): a private compile cache, seeded from the node."""


@dataclass(frozen=True)
class StreamSource:
    """Where the node cache's prefetch reads a version's files: a `s3://` or `gs://` prefix, and the S3 endpoint
    of an S3-compatible store (None for AWS S3 and GCS)."""

    uri: str
    """`s3://bucket/prefix` or `gs://bucket/prefix`."""
    endpoint: str | None = None
    """`https://host[:port]` of an S3-compatible store, or None."""


def stream_source(uri: str) -> StreamSource:
    """The object-storage view of a catalog URI: `s3://` and `gs://` as they are; `https://host/bucket/prefix` (the
    on-prem mirror, which must speak the S3 API) as `s3://bucket/prefix` at endpoint `https://host`."""
    if uri.startswith(STREAMER_SCHEMES):
        return StreamSource(uri.rstrip("/"))
    parts = urllib.parse.urlsplit(uri)
    path = parts.path.strip("/")
    if parts.scheme in ("https", "http") and parts.netloc and "/" in path:
        return StreamSource(f"s3://{path}", f"{parts.scheme}://{parts.netloc}")
    raise ValueError(f"weights uri {uri!r} cannot be streamed: use s3://bucket/prefix, gs://bucket/prefix or an "
                     "S3-compatible mirror as https://host/bucket/prefix (vLLM's Run:ai streamer reads s3:// and "
                     "gs:// only)")


def streamer_args(concurrency: int, memory_limit_bytes: int | None = None, tensor_parallel_size: int = 1,
                  streamer_distributed: bool = False) -> tuple[str, ...]:
    """`vllm serve` flags that load the weights with the Run:ai streamer (from the node cache's verified folder).

    `concurrency`: reader threads; `memory_limit_bytes`: the streamer's CPU buffer bound (None: the streamer's
    default), to keep loading inside the pod's memory limit. With `tensor_parallel_size` > 1 and
    `streamer_distributed` (the engine release's loader reads the `distributed` key), the ranks share the reading
    of the files instead of each rank reading every file whole: the key goes into the one
    `--model-loader-extra-config` JSON, since a second such flag would replace the first.
    """
    if concurrency < 1:
        raise ValueError(f"streamer concurrency {concurrency} is below 1: give at least 1 reader thread")
    if memory_limit_bytes is not None and memory_limit_bytes < 2**20:
        raise ValueError(f"streamer memory_limit_bytes {memory_limit_bytes} is below 1 MiB: give a buffer of at "
                         "least a few hundred MiB, or None for the streamer's default")
    if tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size {tensor_parallel_size} is below 1: a replica uses at least 1 GPU")
    extra: dict[str, int | bool] = {"concurrency": concurrency}
    if memory_limit_bytes is not None:
        extra["memory_limit"] = memory_limit_bytes
    if streamer_distributed and tensor_parallel_size > 1:
        extra["distributed"] = True
    return "--load-format", LOAD_FORMAT, "--model-loader-extra-config", json.dumps(extra, sort_keys=True)


def launch_env(files: dict[str, str], node_cache_dir: str, compile_cache_dir: str | None,
               api_key_file: str | None, archive_sha256: str | None = None) -> dict[str, str]:
    """Environment of `weights_cache.py launch`: the expected digests and the node cache folders.

    The launcher waits for the node's prefetch to vouch for exactly these digests, then starts vLLM on the
    node's copy: a replica never reads object storage, so each object is read once per node."""
    if not files and not archive_sha256:
        raise ValueError("launch needs the catalog's digests: per-file (models.<m>.catalog.<version>.files) or "
                         "the archive's sha256")
    env = {"LLMPLANE_GATE_PORT": str(GATE_PORT), "LLMPLANE_NODE_CACHE_DIR": node_cache_dir}
    env |= ({"LLMPLANE_WEIGHT_FILES": json.dumps(files, sort_keys=True)} if files
            else {"LLMPLANE_ARCHIVE_SHA256": str(archive_sha256)})
    if compile_cache_dir is not None:
        env |= {"LLMPLANE_COMPILE_CACHE_DIR": compile_cache_dir, "VLLM_CACHE_ROOT": POD_CACHE_ROOT}
    if api_key_file is not None:
        env["LLMPLANE_API_KEY_FILE"] = api_key_file
    return env


def launch_command(script_dir: str) -> list[str]:
    """The vLLM container's command; its args are `vllm serve`'s after the model (the launcher picks the model)."""
    return ["python3", f"{script_dir}/{SCRIPT_NAME}", "launch", "--"]


def gate_probe() -> dict:
    """The probe handler startup and readiness use with the launcher: a healthy engine on verified weights."""
    return {"httpGet": {"path": "/ready", "port": GATE_PORT}}
