"""The set-up takes a publisher's binary when it downloads with the listed checksum, and builds otherwise.

This machine reaches no download site, so a local HTTP server plays the publisher: it serves a release archive
and a checksum file the way get.pulumi.com and GitHub releases do. The build from the Go module proxy is recorded
instead of run.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from llmplane.toolchain import gotools, releases

BINARY = b"#!/bin/sh\necho pulumi v3.276.0\n"


def _archive() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        member = tarfile.TarInfo("pulumi/pulumi")
        member.size = len(BINARY)
        archive.addfile(member, io.BytesIO(BINARY))
    return data.getvalue()


ARCHIVE = _archive()
FILE = "pulumi-v3.276.0-linux-x64.tar.gz"


@pytest.fixture
def publisher() -> Iterator[dict[str, bytes]]:
    """Files by path on a local server; the test fills them in, and the server's base URL is under ''."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    files[""] = f"http://127.0.0.1:{server.server_port}".encode()
    yield files
    server.shutdown()


@pytest.fixture
def pulumi_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, publisher: dict[str, bytes]) -> list[str]:
    """The pulumi tool with an empty cache, its release on the local publisher, and builds recorded."""
    monkeypatch.setenv("LLMPLANE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LLMPLANE_DOWNLOADS", raising=False)
    base = publisher[""].decode()
    monkeypatch.setattr(releases, "releases", lambda _versions: {
        "pulumi": releases.Release(f"{base}/sdk/{FILE}", f"{base}/pulumi-3.276.0-checksums.txt", "pulumi/pulumi")})
    built: list[str] = []

    def build(tool: gotools.GoTool) -> Path:
        built.append(tool.name)
        tool.cached.write_bytes(b"built from the module proxy")
        return tool.cached

    monkeypatch.setattr(gotools, "_build_locked", build)
    monkeypatch.setattr(gotools.GoTool, "on_path", lambda _self: None)
    return built


def test_a_release_whose_checksum_the_publisher_lists_is_taken_without_a_build(publisher, pulumi_tool):
    publisher[f"/sdk/{FILE}"] = ARCHIVE
    publisher["/pulumi-3.276.0-checksums.txt"] = (
        f"{'0' * 64}  pulumi-v3.276.0-darwin-x64.tar.gz\n{hashlib.sha256(ARCHIVE).hexdigest()}  {FILE}\n").encode()
    path = gotools.build(gotools.TOOLS["pulumi"])
    assert path.read_bytes() == BINARY
    assert path.stat().st_mode & 0o111
    assert pulumi_tool == []


def test_a_download_with_another_checksum_is_refused_and_the_tool_is_built(publisher, pulumi_tool, capsys):
    publisher[f"/sdk/{FILE}"] = ARCHIVE + b"tampered"
    publisher["/pulumi-3.276.0-checksums.txt"] = f"{hashlib.sha256(ARCHIVE).hexdigest()}  {FILE}\n".encode()
    path = gotools.build(gotools.TOOLS["pulumi"])
    assert path.read_bytes() == b"built from the module proxy"
    assert pulumi_tool == ["pulumi"]
    assert "the download is not used; building it instead" in capsys.readouterr().out


def test_no_download_site_means_a_build(publisher, pulumi_tool):
    path = gotools.build(gotools.TOOLS["pulumi"])
    assert path.read_bytes() == b"built from the module proxy"
    assert pulumi_tool == ["pulumi"]


def test_downloads_can_be_turned_off(publisher, pulumi_tool, monkeypatch):
    publisher[f"/sdk/{FILE}"] = ARCHIVE
    publisher["/pulumi-3.276.0-checksums.txt"] = f"{hashlib.sha256(ARCHIVE).hexdigest()}  {FILE}\n".encode()
    monkeypatch.setenv("LLMPLANE_DOWNLOADS", "off")
    gotools.build(gotools.TOOLS["pulumi"])
    assert pulumi_tool == ["pulumi"]


def test_a_bare_sha256_file_as_dl_k8s_io_serves_it_is_read():
    assert releases.expected_digest("ab12" * 16 + "\n", "kube-apiserver") == "ab12" * 16


def test_the_pinned_tools_point_at_their_publishers():
    found = releases.releases({"pulumi": "3.276.0", "pulumi-resource-kubernetes": "4.25.0",
                               "kube-apiserver": "1.37.2"})
    assert found["kubectl"].checksums_url.endswith("/release/v1.37.2/bin/linux/amd64/kubectl.sha256") or \
        found["kubectl"].checksums_url.endswith("/release/v1.37.2/bin/linux/arm64/kubectl.sha256")
    assert found["pulumi"].checksums_url == ("https://github.com/pulumi/pulumi/releases/download/v3.276.0/"
                                             "pulumi-3.276.0-checksums.txt")
    assert set(found) == {"pulumi", "pulumi-resource-kubernetes", "kube-apiserver", "kube-controller-manager",
                          "kube-scheduler", "kubectl"}
