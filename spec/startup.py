"""A replica's start-up, derived from the configuration instead of given as one figure.

Where a new replica lands decides what it waits for:

- a new node: the node joins, the image is pulled (skipped when the pool pre-pulls it), then the weights arrive by
  the model's load path and the engine starts without a compile cache (the node has never compiled);
- a node that is already there (a warm headroom slot, or the node of a replica removed minutes ago): the image and
  the verified weights are on it; the weights are read from the node cache and the engine starts with the compile
  cache when the model keeps one.

Load paths:
- download: today's path, the archive fetched into the pod, checked and loaded: `loadSeconds`, on any node;
- runai_streamer: the prefetcher streams the files from object storage into the node cache, checking each against
  its sha256 (weight bytes / the streamer's rate, capped by the machine's network), and vLLM's streamer reads them
  from local disk (weight bytes / the medium's rate); a warm node skips the first step.

The rates and the engine start come from `facts.loading`, each with its source.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplane.facts.loading import COMPILE_CACHE_SAVES, LOCAL_DISK_BYTES_PER_SECOND, stream_bytes_per_second


@dataclass(frozen=True)
class StartupConfig:
    """The configuration a replica's start-up follows, as plain values (the planner reads them from the spec)."""

    weight_bytes: float
    """Bytes of the weights, all shards together."""
    load_format: str
    """download or runai_streamer."""
    load_seconds: float
    """The download path's archive fetch, check and load (`loadSeconds`)."""
    node_seconds: float
    """A new GPU node joining the cluster."""
    image_pull_seconds: float
    """Pulling the serving image onto a node that lacks it."""
    image_prepull: bool
    """The pool has the image on its nodes before a replica needs it."""
    cache_medium: str | None
    """The pool's node-cache medium (nvme, local-ssd, host-path), None without a cache or when the model does not
    load through it."""
    machine_type: str | None
    """The pool's machine type (its network caps streaming), None on-prem."""
    engine_start_seconds: float
    """vLLM's start once the weights are in GPU memory, with nothing compiled."""
    compile_cache: bool
    """The engine's compile cache is kept on the node cache."""


@dataclass(frozen=True)
class Startup:
    """The seconds of each step, by where the replica lands."""

    node_seconds: float
    """A new node joining."""
    image_pull_seconds: float
    """The image pull a replica waits for (0 when pre-pulled)."""
    load_seconds: float
    """Weights and engine start on a new node."""
    reload_seconds: float
    """Weights and engine start on a node that already holds the model (warm slot or a recent replica's node)."""
    prefetch_seconds: float
    """Filling a new node's cache with the verified weights (what a warm slot's replacement waits for)."""
    steps: str
    """How the figures were derived, for reports."""

    @property
    def cold_start_seconds(self) -> float:
        """A replica on a new node."""
        return self.node_seconds + self.image_pull_seconds + self.load_seconds


def derive(config: StartupConfig) -> Startup:
    """The start-up a configuration gives (see the module's docstring)."""
    image = 0.0 if config.image_prepull else config.image_pull_seconds
    image_text = "image pre-pulled" if config.image_prepull else f"image {config.image_pull_seconds:g} s"
    if config.load_format != "runai_streamer" or config.cache_medium is None:
        return Startup(config.node_seconds, image, config.load_seconds, config.load_seconds, 0.0,
                       f"node {config.node_seconds:g} s + {image_text} + download and load {config.load_seconds:g} s")
    stream = stream_bytes_per_second(config.machine_type)
    disk = LOCAL_DISK_BYTES_PER_SECOND[config.cache_medium]
    prefetch = config.weight_bytes / stream
    read = config.weight_bytes / disk
    engine = config.engine_start_seconds
    warm_engine = engine * (1 - COMPILE_CACHE_SAVES) if config.compile_cache else engine
    steps = (f"new node: node {config.node_seconds:g} s + {image_text} + streamed into the {config.cache_medium} "
             f"cache {prefetch:.1f} s ({config.weight_bytes / 1e9:.1f} GB at {stream / 1e9:.2f} GB/s) + read "
             f"{read:.1f} s ({disk / 1e9:.2f} GB/s) + engine {engine:g} s; warm node: read {read:.1f} s + engine "
             f"{warm_engine:g} s" + (" (compile cache)" if config.compile_cache else ""))
    return Startup(config.node_seconds, image, prefetch + read + engine, read + warm_engine, prefetch, steps)
