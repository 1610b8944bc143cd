"""Weights streamed, not copied: the `vllm serve` arguments and environment for the Run:ai Model Streamer.

vLLM v0.14.0 streams safetensors with `--load-format runai_streamer` from `s3://` and `gs://` only
(`vllm/transformers_utils/runai_utils.py` SUPPORTED_SCHEMES); an on-prem https mirror is reached as S3-compatible
storage: `s3://<bucket>/<prefix>` plus its endpoint. What each name means, and where it is read:
- `--load-format runai_streamer`, `--model-loader-extra-config`: vLLM's EngineArgs (`vllm/engine/arg_utils.py`);
  the streamer loader (`vllm/model_executor/model_loader/runai_streamer_loader.py`) reads the extra-config keys
  `concurrency` (sets RUNAI_STREAMER_CONCURRENCY) and `memory_limit` (RUNAI_STREAMER_MEMORY_LIMIT), and copies
  AWS_ENDPOINT_URL into RUNAI_STREAMER_S3_ENDPOINT.
- RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING=0 and AWS_EC2_METADATA_DISABLED=true for S3-compatible stores: vLLM's
  documentation, "Loading models with Run:ai Model Streamer"; the variable is read by the streamer's S3 client
  (run-ai/runai-model-streamer, cpp s3 client, `try_getenv("RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING")`).
- VLLM_ASSETS_CACHE: where vLLM pulls a streamed model's config and tokenizer (`ObjectStorageModel`, a folder
  named by the URI's hash that it deletes first), so it must be private to the pod; VLLM_CACHE_ROOT: the root of
  the torch.compile cache (`vllm/compilation/backends.py`: `<VLLM_CACHE_ROOT>/torch_compile_cache/<hash>`,
  inductor and Triton caches inside it). Both are vLLM v0.14.0 `vllm/envs.py` variables.
Credentials come from the workload identity (EKS Pod Identity, GKE Workload Identity: nothing to set) or, on
premises, from credential files: AWS_SHARED_CREDENTIALS_FILE (AWS SDKs) and GOOGLE_APPLICATION_CREDENTIALS
(Google client libraries).
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
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
"""Port of the launcher's readiness gate: `/ready` answers 200 once the weights are verified and vLLM is healthy."""
POD_CACHE_ROOT = "/var/cache/vllm/root"
"""VLLM_CACHE_ROOT inside the pod (on its writable cache volume): a private compile cache, seeded from the node."""
POD_ASSETS = "/var/cache/vllm/assets"
"""VLLM_ASSETS_CACHE inside the pod: where vLLM pulls a streamed model's config and tokenizer."""


@dataclass(frozen=True)
class StreamSource:
    """Where the streamer reads a version's files: a `s3://` or `gs://` prefix, and the S3 endpoint of an
    S3-compatible store (None for AWS S3 and GCS)."""

    uri: str
    """`s3://bucket/prefix` or `gs://bucket/prefix`."""
    endpoint: str | None = None
    """`https://host[:port]` of an S3-compatible store, or None."""


def stream_source(uri: str) -> StreamSource:
    """The streamer's view of a catalog URI: `s3://` and `gs://` as they are; `https://host/bucket/prefix` (the
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


@dataclass(frozen=True)
class StreamerSettings:
    """What a vLLM container needs to load one version with the streamer."""

    args: tuple[str, ...]
    """Flags after the model argument of `vllm serve`."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment of the vLLM container."""
    source: StreamSource | None = None
    """Where the weights stream from."""


def streamer_settings(uri: str, concurrency: int, memory_limit_bytes: int | None = None,
                      aws_credentials_file: str | None = None,
                      google_credentials_file: str | None = None) -> StreamerSettings:
    """Flags and environment for `--load-format runai_streamer` from `uri` (or from a verified local copy of
    it: the streamer reads local folders too, with the same concurrency).

    `concurrency`: reader threads (for S3, client connections); `memory_limit_bytes`: the streamer's CPU buffer
    bound (None: the streamer's default), to keep loading inside the pod's memory limit.
    """
    if concurrency < 1:
        raise ValueError(f"streamer concurrency {concurrency} is below 1: give at least 1 reader thread")
    if memory_limit_bytes is not None and memory_limit_bytes < 2**20:
        raise ValueError(f"streamer memory_limit_bytes {memory_limit_bytes} is below 1 MiB: give a buffer of at "
                         "least a few hundred MiB, or None for the streamer's default")
    source = stream_source(uri)
    extra: dict[str, int] = {"concurrency": concurrency}
    if memory_limit_bytes is not None:
        extra["memory_limit"] = memory_limit_bytes
    env = {"VLLM_ASSETS_CACHE": POD_ASSETS}
    if source.endpoint:
        env |= {"AWS_ENDPOINT_URL": source.endpoint, "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING": "0",
                "AWS_EC2_METADATA_DISABLED": "true"}
    if aws_credentials_file:
        env["AWS_SHARED_CREDENTIALS_FILE"] = aws_credentials_file
    if google_credentials_file:
        env["GOOGLE_APPLICATION_CREDENTIALS"] = google_credentials_file
    args = ("--load-format", LOAD_FORMAT, "--model-loader-extra-config", json.dumps(extra, sort_keys=True))
    return StreamerSettings(args, env, source)


def launch_env(files: dict[str, str], stream: StreamSource | None, node_cache_dir: str | None,
               compile_cache_dir: str | None, api_key_file: str | None,
               archive_sha256: str | None = None) -> dict[str, str]:
    """Environment of `weights_cache.py launch`: the expected digests, the stream and the node cache folders.

    With per-file digests the launcher streams when the node cache is cold; with only the archive's digest (the
    download format on a pool with a node cache) it waits for the node's prefetch."""
    if stream is not None and not files:
        raise ValueError("streaming needs the catalog's per-file sha256 digests: set "
                         "models.<m>.catalog.<version>.files")
    if not files and not archive_sha256:
        raise ValueError("launch needs the catalog's digests: per-file (models.<m>.catalog.<version>.files) or "
                         "the archive's sha256")
    if stream is None and node_cache_dir is None:
        raise ValueError("launch needs a stream source or a node cache folder to load from")
    env = {"LLMPLANE_GATE_PORT": str(GATE_PORT)}
    env |= ({"LLMPLANE_WEIGHT_FILES": json.dumps(files, sort_keys=True)} if files
            else {"LLMPLANE_ARCHIVE_SHA256": str(archive_sha256)})
    if stream is not None:
        env["LLMPLANE_STREAM_URI"] = stream.uri
    if node_cache_dir is not None:
        env["LLMPLANE_NODE_CACHE_DIR"] = node_cache_dir
    if compile_cache_dir is not None:
        env |= {"LLMPLANE_COMPILE_CACHE_DIR": compile_cache_dir, "VLLM_CACHE_ROOT": POD_CACHE_ROOT}
    if api_key_file is not None:
        env["LLMPLANE_API_KEY_FILE"] = api_key_file
    return env


def launch_command(script_dir: str) -> list[str]:
    """The vLLM container's command; its args are `vllm serve`'s after the model (the launcher picks the model)."""
    return ["python3", f"{script_dir}/{SCRIPT_NAME}", "launch", "--"]


def gate_probe() -> dict:
    """The probe handler startup and readiness use with the launcher: verified weights and a healthy engine."""
    return {"httpGet": {"path": "/ready", "port": GATE_PORT}}
