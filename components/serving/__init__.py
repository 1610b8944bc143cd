"""Serving: hardened vLLM services per model version, and rollouts that split traffic between them."""
