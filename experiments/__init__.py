"""Experiments between a model's deployed versions: the Prometheus queries that read each arm's sufficient
statistics, the always-valid sequential test that judges them, and the verdict and weights of the next step.

Layer 4: reads the spec and the monitoring catalog, and Prometheus over HTTP; the environment file's edit and the
`llmplane experiment report` command live in stacks/ above it.
"""
