"""Facts about container images the platform builds on."""

from __future__ import annotations

ENVOY_GATEWAY_VERSION = "1.8.1"
"""Envoy Gateway: the chart the clusters install (components/gateway/charts.py) and the controller the tests run
(toolchain/gotools.py), one pin. Why this release: components.gateway.charts.ENVOY_GATEWAY."""
CERT_MANAGER_VERSION = "1.21.2"
"""cert-manager: the chart the clusters install (components/gateway/charts.py) and the controllers the tests run
(toolchain/gotools.py), one pin."""
