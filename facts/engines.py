"""The vLLM releases llmplane supports: each one's image pinned by digest, its source pinned by PyPI's sha256, and
what its source says it accepts (flags, environment variables, metrics, finish reasons), read from that source.

A model version names the release it runs (`catalog.<version>.engine`); validation checks every flag, variable and
metric we use against that release's surface, so an engine upgrade is a reviewed change like any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SURFACES = Path(__file__).resolve().parent / "engine_surface"
"""One JSON file per release: what `python -m llmplane.toolchain.vllm_source write` read from its source."""


@dataclass(frozen=True)
class EngineRelease:
    """One vLLM release: the image that runs it, and the source that tells what it accepts."""

    version: str
    """vLLM's version, e.g. `0.24.0`."""
    image: str | None
    """`vllm/vllm-openai:v<version>@sha256:<index digest>`; None while no digest has been read from a source we
    can cite: such a release is source-checked but not deployable."""
    image_source: str
    """Where the digest was read, or why there is none."""
    sdist_sha256: str
    """sha256 of the release's source distribution on PyPI (`https://pypi.org/pypi/vllm/<version>/json`), checked
    before its source is read."""
    released: str
    """Upload date on PyPI."""


RELEASES: dict[str, EngineRelease] = {release.version: release for release in (
    EngineRelease(
        "0.14.0",
        "vllm/vllm-openai:v0.14.0@sha256:1d6866b87630d94f5e0cdae55ab5abb4ce0b03fcb84d9d10612f9d518d19d4fd",
        "linux/amd64 index digest as pinned in public Dockerfiles (github.com/tinfoilsh/vllm-openai-audio, "
        "Dockerfile)",
        "ed86c6a9d22fbfd059648794493cad88444c71688f3ff6efcb26c5ca353f0e5d", "2026-01-20"),
    EngineRelease(
        "0.24.0",
        "vllm/vllm-openai:v0.24.0@sha256:251eba5cc7c12fed0b75da22a9240e582b1c9e39f6fbc064f86781b963bd814f",
        "the tag's manifest-list digest, as `docker buildx imagetools inspect vllm/vllm-openai:v0.24.0` printed it "
        "in a public build receipt, and pinned in public serving configs",
        "0862453adc1f3339f1a0c9dca1179c34d6ed6e118f87b6e5bddd120af614ac66", "2026-06-30"),
    EngineRelease(
        "0.31.0",
        "vllm/vllm-openai:v0.31.0@sha256:c1c9f6fd5c109ba7f0546a59f5b2f15fb87f64c77782e90a27b648b42a8e67c3",
        "the tag's manifest-list digest (`docker image inspect` RepoDigest, read from Docker Hub on 2026-10-08), "
        "pinned alike in several public Dockerfiles",
        "dde46f1efbe846e5bd0c5c4ec6ec71842c42254c7ff3d9bebb2a57028715d380", "2026-10-05"),
    EngineRelease(
        "0.34.0", None,
        "no digest of v0.34.0 is published anywhere this project can read (Docker Hub is not reachable from its "
        "machines, and no public file pins it yet): read it with `docker buildx imagetools inspect "
        "vllm/vllm-openai:v0.34.0` and record it here",
        "fcad848b246a9d8652b47e6425af92334dc02492f9802720f54e27b823cf0113", "2026-11-16"),
)}
"""Oldest first: 0.14.0 (the oldest still supported, what every version ran until now), 0.24.0 and 0.31.0 in
between, 0.34.0 (PyPI's newest)."""

DEFAULT_RELEASE = "0.14.0"
"""The release a catalog version runs when it names none."""


@dataclass(frozen=True)
class Surface:
    """What a release's source accepts and emits, as read by toolchain/vllm_source.py."""

    version: str
    flags: frozenset[str]
    """`vllm serve` options, without the leading dashes (`max-model-len`); booleans also as `no-<flag>`."""
    environment: frozenset[str]
    """Environment variables vLLM reads (vllm/envs.py)."""
    metrics: frozenset[str]
    """Prometheus metric families it exports by default."""
    hidden_metrics: frozenset[str]
    """Families it exports only with `--show-hidden-metrics-for-version` (deprecated ones)."""
    finish_reasons: tuple[str, ...]
    load_formats: frozenset[str]
    kv_cache_dtypes: frozenset[str]
    speculative_methods: frozenset[str]
    kv_offloading_backends: frozenset[str]
    """Values `--kv-offloading-backend` takes (vLLM's native CPU offload and LMCache)."""
    streamer_distributed: bool
    """Whether the Run:ai streamer loader reads `distributed` from `--model-loader-extra-config`."""

    def accepts(self, flag: str) -> bool:
        """Whether `vllm serve` of this release takes `--<flag>`."""
        return flag in self.flags


@cache
def surface(version: str) -> Surface:
    """The surface of a supported release (an unknown version is a KeyError: the spec refuses it first)."""
    data = json.loads((SURFACES / f"{RELEASES[version].version}.json").read_text())
    return Surface(
        version=data["version"], flags=frozenset(data["flags"]), environment=frozenset(data["environment"]),
        metrics=frozenset(data["metrics"]), hidden_metrics=frozenset(data["hidden_metrics"]),
        finish_reasons=tuple(data["finish_reasons"]), load_formats=frozenset(data["load_formats"]),
        kv_cache_dtypes=frozenset(data["kv_cache_dtypes"]),
        speculative_methods=frozenset(data["speculative_methods"]),
        kv_offloading_backends=frozenset(data["kv_offloading_backends"]),
        streamer_distributed=data["streamer_distributed"])
