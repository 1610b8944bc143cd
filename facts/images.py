"""Facts about container images the platform builds on."""

from __future__ import annotations

ENVOY_GATEWAY_VERSION = "1.8.1"
"""Envoy Gateway: the chart the clusters install (components/gateway/charts.py) and the controller the tests run
(toolchain/gotools.py), one pin. Why this release: components.gateway.charts.ENVOY_GATEWAY."""
CERT_MANAGER_VERSION = "1.21.2"
"""cert-manager: the chart the clusters install (components/gateway/charts.py) and the controllers the tests run
(toolchain/gotools.py), one pin."""
VLLM_VERSION = "0.14.0"
"""The vLLM release the serving image runs; the tests read this release's wheel as source."""

VLLM_IMAGE = (
    "vllm/vllm-openai:v0.14.0@sha256:1d6866b87630d94f5e0cdae55ab5abb4ce0b03fcb84d9d10612f9d518d19d4fd"
)
"""The official vLLM OpenAI-compatible server image, pinned by digest (v0.14.0, linux/amd64 index digest as
pinned in public Dockerfiles, e.g. tinfoilsh/vllm-openai-audio). Our serving image builds on it."""
