"""Offline Pulumi toolchain: the pieces of a Pulumi install that cannot be
downloaded here (language host, Kubernetes render provider), plus the
bootstrap that assembles them and the `make up` summary."""
