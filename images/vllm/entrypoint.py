#!/usr/bin/env python3
"""Fetch a model version's weights into the node-local cache, verify them, then exec `vllm serve`.

Environment: LLMPLANE_MODEL_URI (s3://, gs://, https://; http:// only for local tests),
LLMPLANE_MODEL_SHA256 (the catalog's digest of the archive), LLMPLANE_MODEL_CACHE (cache folder),
LLMPLANE_API_KEY_FILE (optional: the API key, mounted from a Secret as a file, handed to vLLM as VLLM_API_KEY
so the key never sits in the pod spec's environment), LLMPLANE_EXTRA_WEIGHTS (optional: JSON {folder: {uri,
sha256}} of the version's LoRA adapters and speculative draft, each fetched and verified like the weights and
unpacked into `<cache>/extra/<folder>`).
Arguments: passed to `vllm serve` unchanged; the first is the weights folder, `<cache>/weights`.

A download is written to `<sha256>.partial` and renamed only after its digest matches, so an interrupted or
corrupt download never looks complete; a matching archive already in the cache is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

CHUNK = 8 * 2**20
EXIT_VERIFY = 3
EXIT_FETCH = 4


class FetchError(Exception):
    """The weights could not be fetched or did not verify; the message says which and what to do."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _open(uri: str):
    """A readable binary stream for the URI."""
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("https", "http"):
        return urllib.request.urlopen(uri, timeout=60)
    if scheme == "s3":
        import boto3

        bucket, _, key = uri[len("s3://"):].partition("/")
        return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    if scheme == "gs":
        from google.cloud import storage

        bucket, _, key = uri[len("gs://"):].partition("/")
        return storage.Client().bucket(bucket).blob(key).open("rb")
    raise FetchError(f"unsupported weights URI {uri!r}: use s3://, gs:// or https://", EXIT_FETCH)


def fetch(uri: str, sha256: str, cache: Path) -> Path:
    """The verified archive in the cache, downloading it first if needed."""
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / f"{sha256}.tar"
    if final.exists():
        return final
    partial = cache / f"{sha256}.partial"
    digest = hashlib.sha256()
    try:
        with _open(uri) as source, partial.open("wb") as sink:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                sink.write(chunk)
    except FetchError:
        raise
    except Exception as error:
        partial.unlink(missing_ok=True)
        raise FetchError(f"could not download {uri}: {error}", EXIT_FETCH) from error
    actual = digest.hexdigest()
    if actual != sha256:
        partial.unlink(missing_ok=True)
        raise FetchError(
            f"checksum mismatch for {uri}: expected sha256 {sha256}, got {actual}. "
            "The object changed or the catalog entry is wrong; publish a new catalog version instead of "
            "overwriting weights.",
            EXIT_VERIFY,
        )
    partial.rename(final)
    return final


def unpack(archive: Path, target: Path) -> None:
    """Unpack the archive into `target` (replacing an older unpack), refusing paths that escape it."""
    staging = target.with_name(target.name + ".unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="data")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def fetch_extras(spec: str, cache: Path) -> list[str]:
    """Fetch, verify and unpack each extra of LLMPLANE_EXTRA_WEIGHTS; the folders unpacked, in order."""
    extras = json.loads(spec) if spec else {}
    for folder, source in sorted(extras.items()):
        if "/" in folder or folder in ("", ".", ".."):
            raise FetchError(f"extra weights folder {folder!r} is not a plain name", EXIT_FETCH)
        unpack(fetch(source["uri"], source["sha256"].lower(), cache), cache / "extra" / folder)
    return sorted(extras)


def main(argv: list[str]) -> int:
    """Fetch, verify, unpack, then replace this process with `vllm serve`."""
    try:
        uri, sha256 = os.environ["LLMPLANE_MODEL_URI"], os.environ["LLMPLANE_MODEL_SHA256"].lower()
    except KeyError as missing:
        print(f"llmplane-entrypoint: {missing.args[0]} is not set", file=sys.stderr)
        return EXIT_FETCH
    cache = Path(os.environ.get("LLMPLANE_MODEL_CACHE", "/models"))
    try:
        archive = fetch(uri, sha256, cache)
        unpack(archive, cache / "weights")
        fetch_extras(os.environ.get("LLMPLANE_EXTRA_WEIGHTS", ""), cache)
    except FetchError as error:
        print(f"llmplane-entrypoint: {error}", file=sys.stderr)
        return error.code
    key_file = os.environ.get("LLMPLANE_API_KEY_FILE")
    if key_file:
        os.environ["VLLM_API_KEY"] = Path(key_file).read_text().strip()
    print(f"llmplane-entrypoint: weights {sha256[:12]} verified, starting vllm", file=sys.stderr, flush=True)
    os.execvp("vllm", ["vllm", "serve", *argv])
    return 0  # not reached: exec replaced the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
