"""Released binaries, taken where they can be downloaded and their publisher's checksum matches.

Building every Go tool from the module proxy takes most of an hour on two cores. Where a publisher ships
binaries, the set-up takes those first: the Pulumi CLI (get.pulumi.com, the archive `install.sh` fetches, with the
release's `pulumi-<version>-checksums.txt`), the Kubernetes provider plugin (get.pulumi.com/releases/plugins, with
the GitHub release's checksums file), and Kubernetes' own release binaries (dl.k8s.io, each with its `.sha256`,
as the Kubernetes install docs check kubectl). A download is kept only when its SHA-256 equals the one the
publisher lists; a mismatch is refused and said. Where no download answers (this project's build machines reach
package registries only), or `LLMPLANE_DOWNLOADS=off`, toolchain/gotools.py builds from the Go module proxy.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 10


class DownloadRefused(RuntimeError):
    """A download that answered with bytes that are not the release (wrong digest, no binary in it): never used."""


@dataclass(frozen=True)
class Release:
    """Where a tool's released binary is: the artifact, the checksum file that lists it, and, for an archive, the
    member that is the binary."""

    url: str
    checksums_url: str
    member: str | None = None

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _arch(go_style: bool) -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "amd64" if go_style else "x64"
    return "arm64"


def releases(versions: dict[str, str]) -> dict[str, Release]:
    """The tools with published binaries, at the versions the tool chain pins (`versions[name]`)."""
    pulumi, provider, k8s = versions["pulumi"], versions["pulumi-resource-kubernetes"], versions["kube-apiserver"]
    arch = _arch(go_style=True)
    found = {
        "pulumi": Release(f"https://get.pulumi.com/releases/sdk/pulumi-v{pulumi}-linux-{_arch(False)}.tar.gz",
                          f"https://github.com/pulumi/pulumi/releases/download/v{pulumi}/"
                          f"pulumi-{pulumi}-checksums.txt", "pulumi/pulumi"),
        "pulumi-resource-kubernetes": Release(
            f"https://get.pulumi.com/releases/plugins/pulumi-resource-kubernetes-v{provider}-linux-{arch}.tar.gz",
            f"https://github.com/pulumi/pulumi-kubernetes/releases/download/v{provider}/"
            f"pulumi-kubernetes_{provider}_checksums.txt", "pulumi-resource-kubernetes"),
    }
    for binary in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"):
        url = f"https://dl.k8s.io/release/v{k8s}/bin/linux/{arch}/{binary}"
        found[binary] = Release(url, f"{url}.sha256")
    return found


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return response.read()


def expected_digest(checksums: str, file_name: str) -> str | None:
    """The SHA-256 a checksum file gives `file_name`: `<digest>  <name>` lines, or one bare digest (.sha256)."""
    lines = [line.split() for line in checksums.splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0]) == 1:
        return lines[0][0].lower()
    return next((parts[0].lower() for parts in lines if len(parts) >= 2 and parts[-1].lstrip("*") == file_name),
                None)


def take(release: Release, target: Path) -> bool:
    """Download the release into `target` if its checksum matches. False when no download answers (the caller
    builds instead); DownloadRefused when one answers with the wrong bytes."""
    if os.environ.get("LLMPLANE_DOWNLOADS") == "off":
        return False
    try:
        checksums = _get(release.checksums_url).decode()
        artifact = _get(release.url)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    wanted = expected_digest(checksums, release.file_name)
    actual = hashlib.sha256(artifact).hexdigest()
    if wanted != actual:
        raise DownloadRefused(f"{release.url}: SHA-256 {actual}, but {release.checksums_url} lists "
                               f"{wanted or 'no digest for it'}; the download is not used")
    if release.member:
        with tarfile.open(fileobj=io.BytesIO(artifact)) as archive:
            member = archive.extractfile(release.member)
            if member is None:
                raise DownloadRefused(f"{release.url}: no {release.member} in the archive")
            artifact = member.read()
    partial = target.with_suffix(".download")
    partial.write_bytes(artifact)
    partial.chmod(0o755)
    partial.replace(target)
    return True
