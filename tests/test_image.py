"""The serving image and its entrypoint: pinned, non-root, no secrets in layers, weights verified before use."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from llmplane.facts.engines import DEFAULT_RELEASE, RELEASES

IMAGE_DIR = Path(__file__).resolve().parents[1] / "images" / "vllm"
ENTRYPOINT = IMAGE_DIR / "entrypoint.py"
DOCKERFILE = (IMAGE_DIR / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    lines = re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    return [tuple(line.strip().split(None, 1)) for line in lines if line.strip() and not line.startswith("#")]


def test_the_base_is_the_engine_release_the_stack_passes_and_defaults_to_the_default_release_by_digest():
    froms = [arg for op, arg in _instructions() if op == "FROM"]
    assert froms == ["${VLLM_BASE}"]
    defaults = [arg.split("=", 1)[1] for op, arg in _instructions() if op == "ARG" and arg.startswith("VLLM_BASE=")]
    assert defaults == [RELEASES[DEFAULT_RELEASE].image]
    assert re.search(r"@sha256:[0-9a-f]{64}$", defaults[0])


def test_image_runs_as_a_numeric_non_root_user():
    users = [arg for op, arg in _instructions() if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert users[-1].split(":")[0].isdigit(), "numeric so runAsNonRoot can verify it"


def test_no_secret_enters_a_layer():
    for op, arg in _instructions():
        if op in ("ARG", "ENV"):
            assert not re.search(r"(KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL)", arg, re.I), arg
        if op in ("COPY", "ADD"):
            assert not re.search(r"(\.aws|credentials|\.netrc|\.env\b|id_rsa)", arg), arg


@pytest.fixture
def weights_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving a small weights archive; yields (url, archive bytes)."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        data = b'{"architectures": ["LlamaForCausalLM"]}'
        info = tarfile.TarInfo("config.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "weights.tar").write_bytes(payload.getvalue())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "srv"), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/weights.tar", payload.getvalue()
    server.shutdown()


def _run(tmp_path: Path, uri: str, sha256: str, extras: str = "") -> subprocess.CompletedProcess:
    """Run the entrypoint with a fake `vllm` on PATH that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "vllm"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'vllm-args'}\necho \"$VLLM_API_KEY\" > {tmp_path / 'key'}\n")
    fake.chmod(0o755)
    (tmp_path / "api-key").write_text("sk-test-key\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LLMPLANE_MODEL_URI": uri,
           "LLMPLANE_MODEL_SHA256": sha256, "LLMPLANE_MODEL_CACHE": str(tmp_path / "cache"),
           "LLMPLANE_API_KEY_FILE": str(tmp_path / "api-key"), "LLMPLANE_EXTRA_WEIGHTS": extras}
    return subprocess.run([sys.executable, str(ENTRYPOINT), "/models/weights", "--port", "8000"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_verified_weights_are_unpacked_and_vllm_serve_is_execed(tmp_path, weights_server):
    url, archive = weights_server
    result = _run(tmp_path, url, hashlib.sha256(archive).hexdigest())
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cache" / "weights" / "config.json").exists()
    assert (tmp_path / "vllm-args").read_text().split() == ["serve", "/models/weights", "--port", "8000"]
    assert (tmp_path / "key").read_text().strip() == "sk-test-key", "the mounted key reaches vLLM"


def test_checksum_mismatch_fails_clearly_and_leaves_nothing_that_looks_complete(tmp_path, weights_server):
    url, _ = weights_server
    wrong = "0" * 64
    result = _run(tmp_path, url, wrong)
    assert result.returncode == 3
    assert "checksum mismatch" in result.stderr and wrong in result.stderr
    assert not (tmp_path / "vllm-args").exists(), "vllm must not start on unverified weights"
    leftovers = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert leftovers == [], leftovers


def test_unreachable_weights_fail_without_traceback(tmp_path):
    result = _run(tmp_path, "http://127.0.0.1:9/missing.tar", "0" * 64)
    assert result.returncode == 4
    assert "could not download" in result.stderr and "Traceback" not in result.stderr


def test_a_verified_archive_in_the_cache_is_reused(tmp_path, weights_server):
    url, archive = weights_server
    digest = hashlib.sha256(archive).hexdigest()
    assert _run(tmp_path, url, digest).returncode == 0
    result = _run(tmp_path, "http://127.0.0.1:9/gone.tar", digest)
    assert result.returncode == 0, "the cached, verified archive is used without downloading again"


def test_a_versions_lora_adapters_and_draft_are_verified_and_unpacked_beside_the_weights(tmp_path, weights_server):
    """The folders `--lora-modules sql=/models/extra/lora-sql` and a draft's `/models/extra/draft` name."""
    url, archive = weights_server
    digest = hashlib.sha256(archive).hexdigest()
    extras = json.dumps({"lora-sql": {"uri": url, "sha256": digest}, "draft": {"uri": url, "sha256": digest}})
    result = _run(tmp_path, url, digest, extras)
    assert result.returncode == 0, result.stderr
    for folder in ("lora-sql", "draft"):
        assert (tmp_path / "cache" / "extra" / folder / "config.json").exists()


def test_an_adapter_that_does_not_verify_keeps_vllm_from_starting(tmp_path, weights_server):
    url, archive = weights_server
    extras = json.dumps({"lora-sql": {"uri": url, "sha256": "0" * 64}})
    result = _run(tmp_path, url, hashlib.sha256(archive).hexdigest(), extras)
    assert result.returncode == 3 and "checksum mismatch" in result.stderr
    assert not (tmp_path / "vllm-args").exists()
    assert not (tmp_path / "cache" / "extra" / "lora-sql").exists()
