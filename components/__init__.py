"""Reusable Pulumi ComponentResources: clusters, serving, rollouts. They take validated spec sections, never config."""
