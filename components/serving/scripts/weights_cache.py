#!/usr/bin/env python3
"""The node model cache's one tool: fill it (prefetch), check it (verify), and start vLLM from it (launch).

The catalog's integrity promise for streamed weights is per-file sha256, enforced by reading the bytes, never by
trusting object metadata (GCS has no sha256 checksum; S3's is composite for multipart uploads):
- `prefetch` (the node cache DaemonSet's init container) downloads each file of each catalog version deployed
  on the pool to `<file>.partial`, hashing the same bytes as it writes them, and renames it into place only when
  the digest matches; the version's marker (`.llmplane-verified.json`, listing the digests) is written last.
- `launch` (the vLLM container's command) waits until the node cache's marker names exactly the expected digests,
  then starts vLLM on that folder (the Run:ai streamer reads local disk as well as object storage). A new node
  thus reads each object from object storage once, in the prefetch: a replica streaming from object storage
  would read it again, and hashing what it streamed would take a third read, since the streamer verifies
  nothing. Unverified bytes never serve: vLLM starts only on a folder the marker vouches for.
  The version's extras (LoRA adapters, a speculative draft: LLMPLANE_EXTRA_WEIGHTS, {folder: {uri, sha256}}) are
  small archives the launcher fetches itself into the pod's LLMPLANE_EXTRAS_DIR, hashed as they are written,
  before vLLM starts.
- `verify` checks a folder against digests (the operator's check; the tests run it on good and corrupted files).

Standard library only, plus boto3 / google-cloud-storage for s3:// and gs:// (both in the serving image).
Exit codes: 0 ok, 3 a digest did not match, 4 a fetch failed or the input is wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

CHUNK = 8 * 2**20
MARKER = ".llmplane-verified.json"
"""Written last into a version's folder: the digests it was verified against."""
PREFETCH_POLL_SECONDS = 2
"""How often a waiting launcher reads the marker (a small file on local disk)."""
EXIT_VERIFY = 3
EXIT_FETCH = 4


class CacheError(Exception):
    """A fetch or a verification failed; the message names the file, the values and the fix."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    print(f"llmplane-weights-cache: {message}", file=sys.stderr, flush=True)


def _open(uri: str, endpoint: str | None = None) -> BinaryIO:
    """A readable binary stream for s3://, gs://, https://, http:// or file:// (a mounted mirror)."""
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme == "file":
        return open(urllib.parse.urlsplit(uri).path, "rb")
    if scheme in ("https", "http"):
        return urllib.request.urlopen(uri, timeout=60)
    if scheme == "s3":
        import boto3
        from botocore.config import Config

        bucket, _, key = uri[len("s3://"):].partition("/")
        config = Config(s3={"addressing_style": "path"}) if endpoint else None
        client = boto3.client("s3", endpoint_url=endpoint, config=config)
        return client.get_object(Bucket=bucket, Key=key)["Body"]
    if scheme == "gs":
        from google.cloud import storage

        bucket, _, key = uri[len("gs://"):].partition("/")
        return storage.Client().bucket(bucket).blob(key).open("rb")
    raise CacheError(f"unsupported weights URI {uri!r}: use s3://, gs://, https:// or file://", EXIT_FETCH)


def file_uri(prefix: str, name: str) -> str:
    """The object of one file under a version's prefix."""
    return f"{prefix.rstrip('/')}/{name}"


def _safe_name(name: str) -> str:
    """A relative file name that stays inside its folder."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise CacheError(f"file name {name!r} escapes the version's folder: use a relative path without '..'",
                         EXIT_FETCH)
    return name


def hash_stream(source: BinaryIO, sink: BinaryIO | None = None) -> str:
    """sha256 of a stream, copying it to `sink` on the way."""
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest()


def mismatch(what: str, expected: str, actual: str) -> CacheError:
    return CacheError(
        f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}. The object changed or the "
        "catalog entry is wrong; publish a new catalog version instead of overwriting weights.", EXIT_VERIFY)


def fetch_file(uri: str, expected: str, target: Path, endpoint: str | None = None) -> None:
    """Download one file to `target`, verified: it appears under its name only when its digest matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        with _open(uri, endpoint) as source, partial.open("wb") as sink:
            actual = hash_stream(source, sink)
    except CacheError:
        raise
    except Exception as error:
        partial.unlink(missing_ok=True)
        raise CacheError(f"could not download {uri}: {error}", EXIT_FETCH) from error
    if actual != expected.lower():
        partial.unlink(missing_ok=True)
        raise mismatch(uri, expected, actual)
    partial.rename(target)


def read_marker(folder: Path) -> dict | None:
    """The marker of a verified version folder, or None."""
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def write_marker(folder: Path, record: dict) -> None:
    """Write the marker atomically, after everything it vouches for."""
    staging = folder / (MARKER + ".partial")
    staging.write_text(json.dumps(record, sort_keys=True))
    staging.rename(folder / MARKER)


def verify_folder(folder: Path, files: dict[str, str]) -> None:
    """Every listed file is in `folder` with its sha256; raises CacheError naming the first that is not."""
    for name, expected in sorted(files.items()):
        path = folder / _safe_name(name)
        if not path.is_file():
            raise CacheError(f"{path} is missing: run the prefetch again (delete {folder / MARKER} first)",
                             EXIT_FETCH)
        with path.open("rb") as source:
            actual = hash_stream(source)
        if actual != expected.lower():
            raise mismatch(str(path), expected, actual)


def prefetch_version(root: Path, entry: dict) -> str:
    """Fill one version's folder (files or the unpacked archive), verified; returns what it did."""
    folder = root / "weights" / entry["model"] / entry["version"]
    files: dict[str, str] = entry.get("files") or {}
    record = {"files": files} if files else {"archive_sha256": entry["archive_sha256"]}
    marker = read_marker(folder)
    if marker is not None and {k: marker.get(k) for k in record} == record:
        return "already verified"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if files:
        for name, digest in sorted(files.items()):
            fetch_file(file_uri(entry["uri"], name), digest, folder / _safe_name(name), entry.get("endpoint"))
    else:
        archive = root / "archives" / f"{entry['archive_sha256']}.tar"
        fetch_file(entry["uri"], entry["archive_sha256"], archive, entry.get("endpoint"))
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
        archive.unlink()
    write_marker(folder, record)
    return "fetched and verified"


def _drop_stale(root: Path, keep: set[tuple[str, str]], area: str) -> None:
    """Remove the folders of versions no longer deployed on this pool, so the cache holds what the spec sized."""
    base = root / area
    for model_dir in sorted(base.iterdir()) if base.is_dir() else []:
        for version_dir in sorted(model_dir.iterdir()):
            if (model_dir.name, version_dir.name) not in keep:
                shutil.rmtree(version_dir, ignore_errors=True)
                say(f"removed {version_dir} (no longer deployed on this pool)")


def prefetch(root: Path, manifest: dict) -> None:
    """Fill the node cache with the manifest's versions; make the per-version compile cache folders."""
    entries = manifest["versions"]
    keep = {(e["model"], e["version"]) for e in entries}
    _drop_stale(root, keep, "weights")
    _drop_stale(root, keep, "compile")
    uid = manifest.get("uid")
    for entry in entries:
        if manifest.get("compile_cache"):
            compile_dir = root / "compile" / entry["model"] / entry["version"]
            compile_dir.mkdir(parents=True, exist_ok=True)
            if uid is not None:
                os.chown(compile_dir, uid, uid)
        started = time.monotonic()
        outcome = prefetch_version(root, entry)
        say(f"{entry['model']} {entry['version']}: {outcome} in {time.monotonic() - started:.1f}s")


class Gate:
    """Ready once vLLM answers /health (it starts only on verified weights): what the pod's probes ask. The first
    ready answer runs `on_first_ready` (publishing the compile cache)."""

    def __init__(self, health_url: str):
        self.health_url = health_url
        self.on_first_ready: Callable[[], None] | None = None
        self._ready_once = threading.Event()

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=3) as answer:
                healthy = answer.status == 200
        except OSError:
            return False
        if healthy and not self._ready_once.is_set():
            self._ready_once.set()
            if self.on_first_ready is not None:
                threading.Thread(target=self.on_first_ready, daemon=True).start()
        return healthy

    def serve(self, port: int) -> ThreadingHTTPServer:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.path == "/ready" and gate.ready()
                self.send_response(200 if ok else 503)
                self.end_headers()

            def log_message(self, *_args) -> None:
                return

        server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def seed_compile_cache(node_dir: Path, pod_root: Path) -> None:
    """Start from the node's published compile cache of this version, if one exists (a private copy: vLLM
    writes its cache files in place, so replicas on one node must not share a writable folder)."""
    published = node_dir / "current"
    if published.is_dir():
        shutil.copytree(published, pod_root / "torch_compile_cache", dirs_exist_ok=True)
        say(f"compile cache seeded from {published}")


def publish_compile_cache(pod_root: Path, node_dir: Path) -> None:
    """Publish this replica's compile cache for the next start on this node: copied aside, then renamed into
    place in one step, and only if no replica published first."""
    source = pod_root / "torch_compile_cache"
    if (node_dir / "current").exists() or not source.is_dir():
        return
    staging = node_dir / f".staging-{os.getpid()}-{time.time_ns()}"
    try:
        shutil.copytree(source, staging)
        staging.rename(node_dir / "current")
        say(f"compile cache published to {node_dir / 'current'}")
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        say(f"compile cache not published ({error}); the next start compiles again")


def _local_matches(local: str | None, expected: dict) -> bool:
    """The node cache holds this version, verified against exactly the expected digests."""
    marker = read_marker(Path(local)) if local else None
    return marker is not None and {key: marker.get(key) for key in expected} == expected


def fetch_extras(extras: dict[str, dict[str, str]], folder: Path) -> None:
    """Fetch each extra archive verified (as the weights), unpack it into `folder/<name>`, and drop the archive."""
    for name, source in sorted(extras.items()):
        archive = folder / f"{_safe_name(name)}.tar"
        fetch_file(source["uri"], source["sha256"], archive)
        with tarfile.open(archive) as tar:
            tar.extractall(folder / name, filter="data")
        archive.unlink()


def launch(serve_args: list[str], env: dict[str, str]) -> int:
    """Wait for this node's prefetch to verify the version, then start vLLM on the node cache's folder.

    The replica reads no object storage: the prefetch reads each object once and hashes those same bytes, so
    waiting for its marker costs no more than streaming would, and leaves the node's network to one reader."""
    files: dict[str, str] = json.loads(env.get("LLMPLANE_WEIGHT_FILES", "{}"))
    archive = env.get("LLMPLANE_ARCHIVE_SHA256")
    expected = {"files": files} if files else {"archive_sha256": archive} if archive else {}
    local = env.get("LLMPLANE_NODE_CACHE_DIR")
    if not expected or not local:
        say("set LLMPLANE_WEIGHT_FILES (or LLMPLANE_ARCHIVE_SHA256) and LLMPLANE_NODE_CACHE_DIR")
        return EXIT_FETCH
    if not _local_matches(local, expected):
        say(f"waiting for this node's prefetch to verify {local}")
        while not _local_matches(local, expected):
            time.sleep(PREFETCH_POLL_SECONDS)
    extras = json.loads(env.get("LLMPLANE_EXTRA_WEIGHTS") or "{}")
    if extras:
        fetch_extras(extras, Path(env.get("LLMPLANE_EXTRAS_DIR", "/models/extra")))
    say(f"loading from the node cache {local} (verified by the prefetch)")
    gate = Gate(f"http://127.0.0.1:{env.get('LLMPLANE_VLLM_PORT', '8000')}/health")
    key_file = env.get("LLMPLANE_API_KEY_FILE")
    child_env = dict(env)
    if key_file:
        child_env["VLLM_API_KEY"] = Path(key_file).read_text().strip()
    node_compile = env.get("LLMPLANE_COMPILE_CACHE_DIR")
    pod_root = Path(env.get("VLLM_CACHE_ROOT", "/var/cache/vllm/root"))
    if node_compile:
        seed_compile_cache(Path(node_compile), pod_root)
        gate.on_first_ready = lambda: publish_compile_cache(pod_root, Path(node_compile))
    gate.serve(int(env.get("LLMPLANE_GATE_PORT", "8001")))
    vllm = subprocess.Popen([env.get("LLMPLANE_VLLM", "vllm"), "serve", local, *serve_args], env=child_env)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: vllm.send_signal(number))
    return vllm.wait()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="weights_cache.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fill = commands.add_parser("prefetch", help="fill the node cache from a manifest")
    fill.add_argument("--root", type=Path, required=True)
    fill.add_argument("--manifest", type=Path, required=True)
    check = commands.add_parser("verify", help="check a folder against sha256 digests")
    check.add_argument("folder", type=Path)
    check.add_argument("--files", required=True, help='JSON: {"<relative name>": "<sha256>"}')
    start = commands.add_parser("launch", help="start `vllm serve` on the node cache once it is verified")
    start.add_argument("serve_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.command == "prefetch":
            prefetch(args.root, json.loads(args.manifest.read_text()))
        elif args.command == "verify":
            verify_folder(args.folder, json.loads(args.files))
            say(f"{args.folder}: every file matches")
        else:
            serve = args.serve_args[1:] if args.serve_args[:1] == ["--"] else args.serve_args
            return launch(serve, dict(os.environ))
    except CacheError as error:
        say(str(error))
        return error.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
