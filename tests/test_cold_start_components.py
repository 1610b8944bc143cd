"""Cold-start components (issue 18): the streamer's flags against vLLM v0.14.0's own source, the node cache's tool
run on real files, and every object of NodeModelCache, ImagePrepull, WarmHeadroom and ScaleFromZero under mocks,
checked against the Kubernetes schema."""

from __future__ import annotations

import ast
import collections
import contextlib
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from llmplane.components.autoscaling.model_autoscaler import scaled_object_spec as model_scaled_object_spec
from llmplane.components.autoscaling.scale_from_zero import (
    EXTERNAL_SCALER,
    INTERCEPTOR_SERVICE,
    KEDA_HTTP_ADDON,
    HeldVersion,
    ScaleFromZero,
    ScaleFromZeroArgs,
    http_trigger,
    interceptor_backend_ref,
)
from llmplane.components.serving.image_prepull import PAUSE_IMAGE, GkeImagePreload, ImagePrepull, ImagePrepullArgs
from llmplane.components.serving.model_cache import CachedVersion, NodeModelCache, NodeModelCacheArgs, vllm_volumes
from llmplane.components.serving.streaming import SCRIPT_SOURCE, launch_env, stream_source, streamer_args
from llmplane.components.serving.vllm_service import VerifiedLoading
from llmplane.components.serving.warm_headroom import (
    HeadroomWindow,
    ServingPriorities,
    WarmHeadroom,
    WarmHeadroomArgs,
    window_end,
)
from llmplane.stacks.environments import read_stack_config
from llmplane.stacks.plan import run_plan

from tests import vllm_wheel

SERVING_IMAGE = "registry.example/llmplane/vllm@sha256:" + "a" * 64
LOADER = "vllm/model_executor/model_loader/runai_streamer_loader.py"


def _plan(program):
    """Run a program of components under the offline plan's mocks; its registrations by type."""
    plan = run_plan(read_stack_config("local"), program=program)
    found: dict[str, list[dict]] = {}
    for resource in plan.resources:
        found.setdefault(resource.type, []).append(resource.inputs)
    return found


def _validate(api_version: str, kind: str, inputs: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate({"apiVersion": api_version, "kind": kind, **inputs}, "1.33", strict=True)


# ------------------------------------------------------------------------------------------------ streamer flags


def test_streamer_flags_are_vllm_arguments_and_the_load_format_is_one_it_knows():
    args = streamer_args(16, memory_limit_bytes=2**31)
    flags = [a[2:].replace("-", "_") for a in args if a.startswith("--")]
    assert flags == ["load_format", "model_loader_extra_config"]
    known = vllm_wheel.dataclass_fields("vllm/engine/arg_utils.py", "EngineArgs")
    assert set(flags) <= known
    tree = ast.parse(vllm_wheel.source("vllm/model_executor/model_loader/__init__.py"))
    formats = next(ast.literal_eval(node.value.slice) for node in tree.body
                   if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "LoadFormats")
    fmt = args[args.index("--load-format") + 1]
    assert fmt in formats, f"{fmt} is not a vLLM {vllm_wheel.VLLM_VERSION} load format"


def _extra(args: tuple[str, ...]) -> dict:
    assert args.count("--model-loader-extra-config") == 1, "a second flag would replace the first"
    return json.loads(args[args.index("--model-loader-extra-config") + 1])


def test_every_extra_config_key_is_one_the_streamer_loader_reads():
    extra = _extra(streamer_args(8, memory_limit_bytes=2**30, tensor_parallel_size=4, streamer_distributed=True))
    assert extra == {"concurrency": 8, "memory_limit": 2**30, "distributed": True}
    loader = vllm_wheel.source(LOADER)
    for key in extra:
        assert f'"{key}" in extra_config' in loader, f"vLLM's streamer loader does not read {key!r}"


@pytest.mark.parametrize("tensor_parallel_size, supported, distributed", [
    (4, True, True), (1, True, False), (4, False, False)])
def test_distributed_streaming_only_for_tensor_parallel_replicas_on_releases_that_read_it(
        tensor_parallel_size, supported, distributed):
    extra = _extra(streamer_args(16, tensor_parallel_size=tensor_parallel_size, streamer_distributed=supported))
    assert extra.get("distributed", False) is distributed
    assert extra["concurrency"] == 16


def test_an_https_mirror_is_prefetched_as_s3_compatible_storage_at_its_endpoint():
    files = {"model.safetensors": "1" * 64}
    mirror = CachedVersion("llama", "1.1.0", "https://minio.lab:9000/models/llama/1.1.0/", files).manifest_entry()
    assert (mirror["uri"], mirror["endpoint"]) == ("s3://models/llama/1.1.0", "https://minio.lab:9000")
    for uri in ("s3://weights/m/1.0.0", "gs://weights/m/1.0.0"):
        assert CachedVersion("m", "1.0.0", uri, files).manifest_entry()["endpoint"] is None


def test_cache_variables_are_ones_vllm_reads():
    envs = vllm_wheel.source("vllm/envs.py")
    env = launch_env({"model.safetensors": "0" * 64}, "/node-cache/weights", "/node-cache/compile", None)
    for name in [n for n in env if n.startswith("VLLM_")]:
        assert f'"{name}": lambda' in envs, f"{name} is not a vLLM {vllm_wheel.VLLM_VERSION} variable"
    assert "VLLM_CACHE_ROOT" in env


@pytest.mark.parametrize("uri, words", [
    ("ftp://host/bucket/m", ["'ftp://host/bucket/m'", "s3://bucket/prefix"]),
    ("https://host/only-a-bucket", ["https://host/bucket/prefix"]),
])
def test_uris_the_streamer_cannot_read_are_refused_with_the_fix(uri, words):
    with pytest.raises(ValueError) as error:
        stream_source(uri)
    assert all(word in str(error.value) for word in words)


def test_launching_without_digests_is_refused():
    with pytest.raises(ValueError, match=r"models\.<m>\.catalog\.<version>\.files"):
        launch_env({}, "/node-cache/weights", None, None)


def test_loading_without_a_node_cache_is_refused_as_a_second_read():
    with pytest.raises(ValueError, match="node_cache_path.*read every object twice"):
        VerifiedLoading(files={"model.safetensors": "0" * 64}, stream_uri="s3://w/m/1")


# ------------------------------------------------------------------------------------- the node cache's tool


def _tool(*args: str, env: dict[str, str] | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT_SOURCE), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)


def _source(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A version's files in a mounted mirror, and their digests as the catalog lists them."""
    mirror = tmp_path / "mirror" / "llama" / "1.1.0"
    (mirror / "tokenizer").mkdir(parents=True)
    contents = {"model-00001.safetensors": os.urandom(3 * 2**20), "config.json": b'{"a": 1}',
                "tokenizer/tokenizer.json": b"{}"}
    for name, data in contents.items():
        (mirror / name).write_bytes(data)
    return mirror, {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}


def _manifest(tmp_path: Path, mirror: Path, files: dict[str, str]) -> Path:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"versions": [{"model": "llama", "version": "1.1.0", "uri": mirror.as_uri(),
                                                  "files": files}], "compile_cache": True, "uid": None}))
    return manifest


def test_verify_accepts_good_files_and_names_a_corrupted_one(tmp_path):
    mirror, files = _source(tmp_path)
    assert _tool("verify", str(mirror), "--files", json.dumps(files)).returncode == 0
    with (mirror / "config.json").open("ab") as corrupt:
        corrupt.write(b" ")
    done = _tool("verify", str(mirror), "--files", json.dumps(files))
    assert done.returncode == 3
    assert "config.json" in done.stderr and files["config.json"] in done.stderr
    assert "publish a new catalog version" in done.stderr


def test_prefetch_fills_the_cache_verified_and_writes_the_marker_last(tmp_path):
    mirror, files = _source(tmp_path)
    root = tmp_path / "cache"
    done = _tool("prefetch", "--root", str(root), "--manifest", str(_manifest(tmp_path, mirror, files)))
    assert done.returncode == 0, done.stderr
    folder = root / "weights" / "llama" / "1.1.0"
    for name, digest in files.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert json.loads((folder / ".llmplane-verified.json").read_text())["files"] == files
    assert (root / "compile" / "llama" / "1.1.0").is_dir()
    again = _tool("prefetch", "--root", str(root), "--manifest", str(_manifest(tmp_path, mirror, files)))
    assert "already verified" in again.stderr


def test_prefetch_of_a_corrupted_object_leaves_nothing_that_looks_verified(tmp_path):
    mirror, files = _source(tmp_path)
    (mirror / "model-00001.safetensors").write_bytes(b"tampered")
    root = tmp_path / "cache"
    done = _tool("prefetch", "--root", str(root), "--manifest", str(_manifest(tmp_path, mirror, files)))
    assert done.returncode == 3
    assert "model-00001.safetensors" in done.stderr
    folder = root / "weights" / "llama" / "1.1.0"
    assert not (folder / ".llmplane-verified.json").exists()
    assert not (folder / "model-00001.safetensors").exists()
    assert not list(folder.glob("*.partial"))


def test_prefetch_drops_versions_no_longer_deployed_and_unpacks_archives(tmp_path):
    mirror, files = _source(tmp_path)
    root = tmp_path / "cache"
    stale = root / "weights" / "llama" / "0.9.0"
    stale.mkdir(parents=True)
    archive = tmp_path / "weights.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(mirror / "config.json", arcname="config.json")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"versions": [{"model": "llama", "version": "1.0.0", "uri": archive.as_uri(),
                                                  "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}],
                                    "compile_cache": False}))
    done = _tool("prefetch", "--root", str(root), "--manifest", str(manifest))
    assert done.returncode == 0, done.stderr
    assert not stale.exists()
    assert (root / "weights" / "llama" / "1.0.0" / "config.json").read_bytes() == b'{"a": 1}'


def _fake_vllm(tmp_path: Path) -> Path:
    """A stand-in `vllm` that reads every weight file from the model it is given (a folder, or an http:// prefix
    the way the streamer would read object storage), then records its arguments and runs until stopped."""
    fake = tmp_path / "vllm"
    fake.write_text(f"""#!{sys.executable}
import json, os, pathlib, sys, time, urllib.request
model = sys.argv[2]
for name in json.loads(os.environ.get("LLMPLANE_WEIGHT_FILES", "{{}}")):
    source = model + "/" + name
    if source.startswith("http"):
        urllib.request.urlopen(source).read()
    else:
        pathlib.Path(source).read_bytes()
pathlib.Path({str(tmp_path / "argv.json")!r}).write_text(json.dumps(sys.argv[1:]))
time.sleep(60)
""")
    fake.chmod(0o755)
    return fake


def _wait_for(path: Path, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.exists()


@contextlib.contextmanager
def _object_store(root: Path):
    """A local HTTP object store on 127.0.0.1 serving `root`, counting the GETs of each object."""
    reads: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            with lock:
                reads[self.path] += 1
            super().do_GET()

        def log_message(self, *_args) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", reads
    finally:
        server.shutdown()
        server.server_close()


def _launcher(tmp_path: Path, folder: Path, files: dict[str, str], stream: str) -> subprocess.Popen:
    """The vLLM container's launcher on a new node whose cache is still empty. LLMPLANE_STREAM_URI is what the
    launcher once streamed from when the cache was cold; it must be ignored."""
    env = {**launch_env(files, str(folder), None, None), "LLMPLANE_STREAM_URI": stream,
           "LLMPLANE_VLLM": str(_fake_vllm(tmp_path)), "LLMPLANE_GATE_PORT": "0"}
    return subprocess.Popen([sys.executable, str(SCRIPT_SOURCE), "launch", "--", "--port", "8000"],
                            env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)


def test_launch_loads_from_the_verified_node_cache(tmp_path):
    mirror, files = _source(tmp_path)
    root = tmp_path / "cache"
    _tool("prefetch", "--root", str(root), "--manifest", str(_manifest(tmp_path, mirror, files)))
    folder = root / "weights" / "llama" / "1.1.0"
    process = _launcher(tmp_path, folder, files, "http://127.0.0.1:9/unreachable")
    try:
        assert _wait_for(tmp_path / "argv.json")
        assert json.loads((tmp_path / "argv.json").read_text()) == ["serve", str(folder), "--port", "8000"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_new_node_reads_each_object_from_object_storage_once(tmp_path):
    """The replica starts before its node's prefetch has run: it waits for the prefetch's verified copy and loads
    that, instead of streaming the objects and downloading them again to hash them."""
    mirror, files = _source(tmp_path)
    root = tmp_path / "cache"
    folder = root / "weights" / "llama" / "1.1.0"
    with _object_store(tmp_path / "mirror") as (url, reads):
        process = _launcher(tmp_path, folder, files, f"{url}/llama/1.1.0")
        try:
            time.sleep(1)
            assert not (tmp_path / "argv.json").exists(), "vLLM started before the weights were verified"
            assert process.poll() is None
            manifest = tmp_path / "manifest.json"
            manifest.write_text(json.dumps({"versions": [{"model": "llama", "version": "1.1.0",
                                                          "uri": f"{url}/llama/1.1.0", "files": files}],
                                            "compile_cache": False}))
            done = _tool("prefetch", "--root", str(root), "--manifest", str(manifest))
            assert done.returncode == 0, done.stderr
            assert _wait_for(tmp_path / "argv.json")
            assert json.loads((tmp_path / "argv.json").read_text())[1] == str(folder)
        finally:
            process.terminate()
            process.wait(timeout=10)
        assert dict(reads) == {f"/llama/1.1.0/{name}": 1 for name in files}


def test_a_replica_never_starts_on_weights_the_prefetch_refused(tmp_path):
    mirror, files = _source(tmp_path)
    (mirror / "config.json").write_bytes(b"{}")
    root = tmp_path / "cache"
    folder = root / "weights" / "llama" / "1.1.0"
    process = _launcher(tmp_path, folder, files, mirror.as_uri())
    try:
        done = _tool("prefetch", "--root", str(root), "--manifest", str(_manifest(tmp_path, mirror, files)))
        assert done.returncode == 3 and "config.json" in done.stderr
        time.sleep(2.5)  # longer than the launcher's marker poll
        assert process.poll() is None and not (tmp_path / "argv.json").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)


# ------------------------------------------------------------------------------------------- node model cache


def _cache_args(**changes) -> NodeModelCacheArgs:
    values = dict(pool="l4-pool", cache_path="/var/lib/llmplane/model-cache", image=SERVING_IMAGE,
                  namespace="llmplane-node-cache", service_account="model-cache",
                  versions=(CachedVersion("llama-3-8b", "1.1.0", "s3://weights/llama-3-8b/1.1.0",
                                          {"model.safetensors": "1" * 64}),
                            CachedVersion("llama-3-8b", "1.0.0", "https://mirror.lab/weights/llama.tar",
                                          archive_sha256="2" * 64)))
    values.update(changes)
    return NodeModelCacheArgs(**values)


def test_the_prefetch_runs_on_the_pools_gpu_nodes_without_a_gpu():
    found = _plan(lambda: NodeModelCache("cache", _cache_args()))
    daemonset = found["kubernetes:apps/v1:DaemonSet"][0]
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"llmplane.dev/pool": "l4-pool"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    for container in pod["initContainers"] + pod["containers"]:
        for kind in ("requests", "limits"):
            assert "nvidia.com/gpu" not in container["resources"][kind]
    assert pod["containers"][0]["image"] == PAUSE_IMAGE
    assert {"name": "cache", "hostPath": {"path": "/var/lib/llmplane/model-cache", "type": "DirectoryOrCreate"}} \
        in pod["volumes"]
    manifest = json.loads(found["kubernetes:core/v1:ConfigMap"][0]["data"]["manifest.json"])
    assert {(v["model"], v["version"]) for v in manifest["versions"]} == {("llama-3-8b", "1.0.0"),
                                                                           ("llama-3-8b", "1.1.0")}
    assert next(v for v in manifest["versions"] if v["version"] == "1.1.0")["files"] == {"model.safetensors": "1" * 64}
    _validate("apps/v1", "DaemonSet", daemonset)
    _validate("v1", "ConfigMap", found["kubernetes:core/v1:ConfigMap"][0])


def test_a_new_catalog_version_rolls_the_prefetch():
    def annotation(args):
        return _plan(lambda: NodeModelCache("cache", args))["kubernetes:apps/v1:DaemonSet"][0][
            "spec"]["template"]["metadata"]["annotations"]["llmplane.dev/manifest-sha256"]
    more = _cache_args().versions + (CachedVersion("llama-3-8b", "1.2.0", "s3://w/1.2.0", {"m.safetensors": "3" * 64}),)
    assert annotation(_cache_args()) != annotation(_cache_args(versions=more))


def test_vllm_pods_mount_their_versions_weights_read_only_and_their_compile_cache_writable():
    mounts = vllm_volumes("/var/lib/llmplane/model-cache", "llama-3-8b", "1.1.0", compile_cache=True)
    volumes = {v["name"]: v["hostPath"]["path"] for v in mounts.volumes}
    by_name = {m["name"]: m for m in mounts.mounts}
    assert volumes["node-weights"] == "/var/lib/llmplane/model-cache/weights/llama-3-8b/1.1.0"
    assert by_name["node-weights"]["readOnly"] is True
    assert volumes["node-compile-cache"] == "/var/lib/llmplane/model-cache/compile/llama-3-8b/1.1.0"
    assert not by_name["node-compile-cache"].get("readOnly")
    without = vllm_volumes("/var/lib/llmplane/model-cache", "llama-3-8b", "1.1.0", compile_cache=False)
    assert [m["name"] for m in without.mounts] == ["node-weights"] and without.compile_cache_dir is None


@pytest.mark.parametrize("changes, words", [
    ({"cache_path": "relative/cache"}, ["'relative/cache'", "absolute"]),
    ({"versions": ()}, ["l4-pool", "no version"]),
    ({"versions": (CachedVersion("m", "1.0.0", "s3://w/m"),)}, ["m 1.0.0", "catalog.<version>.files"]),
])
def test_node_cache_mistakes_are_named(changes, words):
    with pytest.raises(ValueError) as error:
        _plan(lambda: NodeModelCache("cache", _cache_args(**changes)))
    assert all(word in str(error.value) for word in words)


# ---------------------------------------------------------------------------------------------- image pre-pull


def test_the_serving_image_is_pulled_on_every_gpu_node_of_the_pool():
    found = _plan(lambda: ImagePrepull("prepull", ImagePrepullArgs(pool="l4-pool", images=(SERVING_IMAGE,),
                                                                   namespace="llmplane")))
    daemonset = found["kubernetes:apps/v1:DaemonSet"][0]
    pod = daemonset["spec"]["template"]["spec"]
    assert [c["image"] for c in pod["initContainers"]] == [SERVING_IMAGE]
    assert [c["image"] for c in pod["containers"]] == [PAUSE_IMAGE]
    assert pod["nodeSelector"] == {"llmplane.dev/pool": "l4-pool"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert all("nvidia.com/gpu" not in c["resources"]["limits"] for c in pod["initContainers"] + pod["containers"])
    _validate("apps/v1", "DaemonSet", daemonset)


def test_an_image_without_a_digest_is_refused():
    with pytest.raises(ValueError, match=r"'vllm/vllm-openai:latest' is not pinned by digest"):
        _plan(lambda: ImagePrepull("p", ImagePrepullArgs(pool="p", images=("vllm/vllm-openai:latest",),
                                                         namespace="llmplane")))


def test_gke_pools_stream_images_and_may_cache_them_on_a_secondary_boot_disk():
    config = GkeImagePreload(secondary_boot_disk_image="projects/p/global/images/vllm-0-14").node_config()
    assert config["gcfs_config"] == {"enabled": True}
    assert config["secondary_boot_disks"] == [{"disk_image": "projects/p/global/images/vllm-0-14",
                                               "mode": "CONTAINER_IMAGE_CACHE"}]
    from pulumi_gcp.container import NodePoolNodeConfigArgs
    NodePoolNodeConfigArgs(**config)  # the provider's own argument names


# ----------------------------------------------------------------------------------------------- warm headroom


def _headroom(**changes) -> WarmHeadroomArgs:
    values = dict(pool="l4-pool", namespace="llmplane", gpus=2, cpu="8", memory="24Gi", slots=1)
    values.update(changes)
    return WarmHeadroomArgs(**values)


def test_placeholders_hold_one_replicas_gpu_shape_below_the_vllm_priority():
    def program():
        ServingPriorities("priorities")
        WarmHeadroom("headroom", _headroom())
    found = _plan(program)
    classes = {c["metadata"]["name"]: c for c in found["kubernetes:scheduling.k8s.io/v1:PriorityClass"]}
    deployment = found["kubernetes:apps/v1:Deployment"][0]
    pod = deployment["spec"]["template"]["spec"]
    placeholder_class = classes[pod["priorityClassName"]]
    assert placeholder_class["value"] < classes["llmplane-serving"]["value"]
    assert placeholder_class["value"] < 0, "pods without a class (0) preempt placeholders too"
    # The Cluster Autoscaler ignores pods below its expendable cutoff (default -10, strict <); placeholders sit
    # clear above it so it keeps nodes for them even where a cluster raises the cutoff a little.
    assert placeholder_class["value"] > -10 + 5
    assert placeholder_class["preemptionPolicy"] == "Never"
    assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"llmplane.dev/pool": "l4-pool"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert deployment["spec"]["replicas"] == 1
    assert "kubernetes:keda.sh/v1alpha1:ScaledObject" not in found
    _validate("apps/v1", "Deployment", deployment)
    for priority_class in classes.values():
        _validate("scheduling.k8s.io/v1", "PriorityClass", priority_class)


def test_scheduled_windows_raise_the_slots_through_keda_cron_triggers():
    windows = (HeadroomWindow("0 8 * * 1-5", 600, 4), HeadroomWindow("30 23 * * 5", 90, 2))
    found = _plan(lambda: WarmHeadroom("headroom", _headroom(windows=windows, time_zone="Europe/Paris")))
    deployment = found["kubernetes:apps/v1:Deployment"][0]
    assert "replicas" not in deployment["spec"], "KEDA owns the count"
    spec = found["kubernetes:keda.sh/v1alpha1:ScaledObject"][0]["spec"]
    assert spec["minReplicaCount"] == 1 and spec["maxReplicaCount"] == 4
    triggers = [t["metadata"] for t in spec["triggers"]]
    assert triggers[0] == {"timezone": "Europe/Paris", "start": "0 8 * * 1-5", "end": "0 18 * * 1-5",
                           "desiredReplicas": "4"}
    assert triggers[1]["end"] == "0 1 * * 6", "Friday 23:30 + 90 min ends Saturday 01:00"


@pytest.mark.parametrize("cron, minutes, end", [
    ("0 22 * * 0,6", 180, "0 1 * * 0,1"),
    ("15 6 * * *", 1440, "15 6 * * *"),
    ("0 9 1 * *", 60, "0 10 1 * *"),
])
def test_window_ends(cron, minutes, end):
    assert window_end(cron, minutes) == end


@pytest.mark.parametrize("cron, minutes, words", [
    ("*/15 8 * * *", 30, ["'*/15 8 * * *'", "fixed minute and hour"]),
    ("0 8 * *", 30, ["4 fields", "give 5"]),
    ("0 23 1 * *", 120, ["crosses midnight", "day-of-week"]),
    ("0 8 * * MON", 30, ["'MON'", "numbers"]),
    ("0 8 * * *", 0, ["durationMinutes 0", "1..1440"]),
])
def test_window_mistakes_are_named(cron, minutes, words):
    with pytest.raises(ValueError) as error:
        window_end(cron, minutes)
    assert all(word in str(error.value) for word in words)


def test_a_window_below_the_base_slots_is_refused():
    with pytest.raises(ValueError, match=r"window '0 8 \* \* \*' has 0 slots, fewer than the 1"):
        _plan(lambda: WarmHeadroom("h", _headroom(windows=(HeadroomWindow("0 8 * * *", 60, 0),))))


# --------------------------------------------------------------------------------------------- scale from zero


def _held(service: str = "llama-3-8b-v1-1-0") -> HeldVersion:
    return HeldVersion(service=service, port=8000, model="llama-3-8b", version="1.1.0", hold_seconds=420,
                       generation_seconds=300, concurrency_per_replica=64)


def test_held_requests_route_through_the_interceptor_to_their_version():
    found = _plan(lambda: ScaleFromZero("sfz", ScaleFromZeroArgs(namespace="llmplane", versions=(_held(),),
                                                                  route_namespace="llmplane")))
    route = found["kubernetes:http.keda.sh/v1beta1:InterceptorRoute"][0]
    assert route["metadata"]["namespace"] == "llmplane"
    assert route["spec"]["target"] == {"service": "llama-3-8b-v1-1-0", "port": 8000}
    assert route["spec"]["timeouts"]["readiness"] == "420s", "held for the whole cold start, not dropped"
    assert route["spec"]["timeouts"]["responseHeader"] == "300s"
    # The HTTPRoute's backend for this version and the interceptor's rule agree on the version's header.
    backend = interceptor_backend_ref("llama-3-8b-v1-1-0", 100)
    header = backend["filters"][0]["requestHeaderModifier"]["set"][0]
    assert route["spec"]["rules"][0]["headers"] == [header]
    assert (backend["name"], backend["namespace"]) == (INTERCEPTOR_SERVICE, "keda")
    grant = found["kubernetes:gateway.networking.k8s.io/v1:ReferenceGrant"][0]
    assert grant["metadata"]["namespace"] == backend["namespace"]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Service", "name": backend["name"]}]
    assert grant["spec"]["from"][0] == {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                        "namespace": "llmplane"}


def test_the_addon_chart_is_pinned():
    found = _plan(lambda: ScaleFromZero("sfz", ScaleFromZeroArgs(namespace="llmplane", versions=(_held(),),
                                                                  route_namespace="llmplane")))
    release = found["kubernetes:helm.sh/v3:Release"][0]
    assert (release["chart"], release["version"]) == ("keda-add-ons-http", KEDA_HTTP_ADDON.version)
    assert release["repositoryOpts"]["repo"] == "https://kedacore.github.io/charts"
    assert release["namespace"] == "keda"


def test_the_versions_one_scaled_object_also_scales_on_held_requests():
    from llmplane.spec.autoscaling_policy import AutoscalingPolicy

    policy = AutoscalingPolicy(served_model_name="llama-3-8b:1.1.0", min_replicas=0, max_replicas=4, keda=True,
                               queue_per_replica=4, kv_cache_target=0.8, scale_up_seconds=0,
                               scale_down_seconds=600, polling_seconds=15, scale_to_zero=True,
                               activation_queue=0, cooldown_seconds=900)
    spec = model_scaled_object_spec(policy, "llama-3-8b-v1-1-0")
    spec["triggers"].append(http_trigger("llama-3-8b-v1-1-0"))
    held = spec["triggers"][-1]
    assert held["type"] == "external-push"
    assert held["metadata"] == {"scalerAddress": EXTERNAL_SCALER, "interceptorRoute": "llama-3-8b-v1-1-0"}
    assert EXTERNAL_SCALER == "keda-add-ons-http-external-scaler.keda:9090"
    assert spec["minReplicaCount"] == 0
    assert len({t["name"] for t in spec["triggers"]}) == len(spec["triggers"]), "trigger names are unique"


@pytest.mark.parametrize("changes, words", [
    ({"hold_seconds": 0}, ["hold_seconds 0", "cold start"]),
    ({"concurrency_per_replica": 0}, ["concurrency_per_replica 0", "maxNumSeqs"]),
])
def test_scale_from_zero_mistakes_are_named(changes, words):
    held = HeldVersion(**{**_held().__dict__, **changes})
    with pytest.raises(ValueError) as error:
        _plan(lambda: ScaleFromZero("s", ScaleFromZeroArgs(namespace="llmplane", versions=(held,),
                                                           route_namespace="llmplane")))
    assert all(word in str(error.value) for word in words)


def _adapter_archive(root: Path) -> str:
    """An adapter archive (adapter_config.json) in `root`; its sha256."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        body = b'{"r": 8, "target_modules": ["q_proj", "v_proj"]}'
        info = tarfile.TarInfo("adapter_config.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    (root / "sql.tar").write_bytes(payload.getvalue())
    return hashlib.sha256(payload.getvalue()).hexdigest()


@pytest.mark.parametrize("good", [True, False], ids=["verified", "tampered"])
def test_the_launcher_fetches_a_versions_adapters_verified_before_vllm_starts(tmp_path, good):
    mirror, files = _source(tmp_path)
    root = tmp_path / "cache"
    _tool("prefetch", "--root", str(root), "--manifest", str(_manifest(tmp_path, mirror, files)))
    folder = root / "weights" / "llama" / "1.1.0"
    store = tmp_path / "adapters"
    store.mkdir()
    digest = _adapter_archive(store)
    extras_dir = tmp_path / "extra"
    with _object_store(store) as (url, _reads):
        env = {**launch_env(files, str(folder), None, None), "LLMPLANE_VLLM": str(_fake_vllm(tmp_path)),
               "LLMPLANE_GATE_PORT": "0", "LLMPLANE_EXTRAS_DIR": str(extras_dir),
               "LLMPLANE_EXTRA_WEIGHTS": json.dumps({"lora-sql": {"uri": f"{url}/sql.tar",
                                                                  "sha256": digest if good else "0" * 64}})}
        process = subprocess.Popen([sys.executable, str(SCRIPT_SOURCE), "launch", "--", "--port", "8000"],
                                   env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
        try:
            if good:
                assert _wait_for(tmp_path / "argv.json")
                assert (extras_dir / "lora-sql" / "adapter_config.json").exists()
                assert not (extras_dir / "lora-sql.tar").exists(), "the archive goes once unpacked"
            else:
                assert process.wait(timeout=30) == 3
                assert "checksum mismatch" in process.stderr.read()
                assert not (tmp_path / "argv.json").exists(), "vLLM never starts beside an unverified adapter"
                assert not (extras_dir / "lora-sql").exists()
        finally:
            process.terminate()
            process.wait(timeout=10)
