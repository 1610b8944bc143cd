"""Hybrid: encrypted, BGP-routed links from cloud regions to on-prem sites."""
