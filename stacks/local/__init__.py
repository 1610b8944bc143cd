"""The local target that ships with llmplane: the embedded cluster (a real control plane with fake GPU nodes) and
what runs beside it, shaped by an environment, and `make up`'s safe update, summary and render configuration.
What only builds or tests the product (Go tool builds, simulators, the docs builder) is in toolchain/."""
