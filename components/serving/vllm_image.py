"""VllmImage: builds images/vllm with pulumi-docker-build and pushes it to one registry (per region)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build
from llmplane.components.options import children_of

IMAGE_CONTEXT = Path(__file__).resolve().parents[2] / "images" / "vllm"


def content_tag(release: str, base: str, context: Path = IMAGE_CONTEXT) -> str:
    """An immutable tag derived from the engine release, its base image and the build context, so an unchanged
    build never pushes a new tag and two releases never share one."""
    digest = hashlib.sha256(base.encode())
    for file in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(file.relative_to(context).as_posix().encode())
        digest.update(file.read_bytes())
    return f"{release}-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class RegistryLogin:
    """Where to push and how to log in; the password is a short-lived token from the cloud, kept secret."""

    repository: pulumi.Input[str]
    """Repository to push to, e.g. `<account>.dkr.ecr.<region>.amazonaws.com/llmplane/vllm`."""
    address: pulumi.Input[str]
    """Registry host."""
    username: pulumi.Input[str]
    """Registry user name."""
    password: pulumi.Input[str]
    """Registry token (secret)."""


@dataclass(frozen=True)
class VllmImageArgs:
    """Where to push the serving image, and what to build."""

    login: RegistryLogin
    """The registry and its short-lived credentials (`GpuCluster.registry_login`)."""
    release: str
    """The vLLM release the image runs (facts/engines.py)."""
    base: str
    """That release's image, by digest: the Dockerfile's `VLLM_BASE`."""
    context: str = str(IMAGE_CONTEXT)
    """images/vllm as the docker-build provider must see it (a program passes a path relative to where the
    engine starts plugins, so the state holds the same value on every clone)."""


class VllmImage(pulumi.ComponentResource):
    """The serving image in one registry; services use `ref`, which always carries the digest."""

    ref: pulumi.Output[str]
    """`repository:tag@sha256:digest` of the pushed image."""

    def __init__(self, name: str, args: VllmImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmplane:serving:VllmImage", name, None, opts)
        login = args.login
        tag = pulumi.Output.concat(login.repository, ":", content_tag(args.release, args.base))
        image = docker_build.Image(
            f"{name}-image",
            context={"location": args.context},
            build_args={"VLLM_BASE": args.base},
            platforms=["linux/amd64"],
            push=True,
            tags=[tag],
            registries=[{"address": login.address, "username": login.username,
                         "password": pulumi.Output.secret(login.password)}],
            build_on_preview=False,
            opts=children_of(self, opts),
        )
        self.ref = image.ref
        self.register_outputs({"ref": self.ref})
