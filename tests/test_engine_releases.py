"""Engine releases: every version names the vLLM release it runs, and what that release accepts is read from its own
source. A flag, value or metric a release lacks is caught by `llmplane validate` with its name and the release."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading

import pytest
import yaml
from llmplane.facts import engines
from llmplane.facts.engines import DEFAULT_RELEASE, RELEASES, surface
from llmplane.monitoring import vllm_metrics
from llmplane.spec import SpecError, engine_rules
from llmplane.toolchain import vllm_source

from tests.test_spec_rules import expect, failure

LLAMA_8B = "llama-3-8b"
LLAMA_70B = "llama-3-70b"


# --- the catalog of releases ------------------------------------------------------------------------------------

def test_the_catalog_holds_the_newest_release_the_oldest_supported_and_releases_between():
    versions = [tuple(map(int, v.split("."))) for v in RELEASES]
    assert versions == sorted(versions), "oldest first"
    assert len(RELEASES) >= 3
    assert "0.34.0" in RELEASES, "PyPI's newest vLLM on 2026-12-08"
    assert DEFAULT_RELEASE in RELEASES


def test_every_deployable_release_is_pinned_by_digest_and_says_where_the_digest_was_read():
    for release in RELEASES.values():
        assert release.image_source
        if release.image is not None:
            assert release.image.startswith(f"vllm/vllm-openai:v{release.version}@sha256:"), release.image
            assert len(release.image.rsplit(":", 1)[1]) == 64


@pytest.mark.parametrize("version", list(RELEASES))
def test_the_recorded_surface_is_what_the_release_source_says(version):
    """facts/engine_surface/<version>.json, which validation reads, equals a fresh read of the release's source
    (PyPI's sdist, verified by its sha256): re-run `python -m llmplane.toolchain.vllm_source write` when not."""
    recorded = json.loads((engines.SURFACES / f"{version}.json").read_text())
    assert recorded == vllm_source.surface(version)


@pytest.mark.parametrize("version", list(RELEASES))
def test_the_cached_source_is_the_one_pypi_published(version):
    verified = (vllm_source.release_dir(version) / "src" / ".verified").read_text().strip()
    assert verified == RELEASES[version].sdist_sha256


def test_a_download_that_is_not_the_published_release_is_refused(tmp_path, monkeypatch):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        body = b"FINISH_REASON_STRINGS = ()\n"
        info = tarfile.TarInfo(f"vllm-{DEFAULT_RELEASE}/vllm/envs.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    payload = archive.getvalue()
    index = json.dumps({"releases": {DEFAULT_RELEASE: [
        {"packagetype": "sdist", "url": f"/files/vllm-{DEFAULT_RELEASE}.tar.gz",
         "digests": {"sha256": hashlib.sha256(payload).hexdigest()}}]}}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = index if self.path == "/pypi/vllm/json" else payload
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(vllm_source, "PYPI_INDEX", f"http://127.0.0.1:{server.server_port}/pypi/vllm/json")
    monkeypatch.setenv("LLMPLANE_CACHE", str(tmp_path))
    monkeypatch.setattr(vllm_source.gotools, "cache_root", lambda: tmp_path)
    try:
        with pytest.raises(vllm_source.SourceRefused, match=RELEASES[DEFAULT_RELEASE].sdist_sha256):
            vllm_source.fetch(DEFAULT_RELEASE)
    finally:
        server.shutdown()
    assert vllm_source.source_root(DEFAULT_RELEASE) is None, "nothing unverified is unpacked"


# --- what a release accepts, checked by validate ---------------------------------------------------------------

def test_a_flag_a_release_removed_fails_validation_with_its_name_and_the_release(env_config, load):
    """--calculate-kv-scales exists in 0.14.0 and 0.24.0 and is gone from 0.31.0 (prod's engine canary)."""
    assert surface("0.14.0").accepts("calculate-kv-scales") and not surface("0.31.0").accepts("calculate-kv-scales")
    config = env_config("prod")
    config["llmplane:models"][LLAMA_70B]["engine"].update(kvCacheDtype="fp8", calculateKvScales=True)
    problem = expect(load, config, "prod", f"models.{LLAMA_70B}.engine.calculateKvScales",
                     "vLLM 0.31.0 (version 1.0.1) has no --calculate-kv-scales", "--calculate-kv-scales")
    assert "0.14.0, 0.24.0" in problem.fix


def test_the_same_settings_pass_on_the_releases_that_have_the_flag(env_config, load):
    config = env_config("prod")
    config["llmplane:models"][LLAMA_70B]["engine"].update(kvCacheDtype="fp8", calculateKvScales=True)
    config["llmplane:models"][LLAMA_70B]["catalog"]["1.0.1"]["engineRelease"] = "0.24.0"
    load(config, "prod")


def test_a_release_outside_the_catalog_is_refused_by_name(env_config, load):
    config = env_config("prod")
    config["llmplane:models"][LLAMA_70B]["catalog"]["1.0.1"]["engineRelease"] = "0.99.0"
    error = failure(load, config, "prod")
    [problem] = [p for p in error.problems if p.path == f"models.{LLAMA_70B}.catalog.1.0.1.engineRelease"]
    assert "0.99.0" in problem.value and "0.34.0" in problem.fix


def test_a_release_without_a_pinned_image_is_not_deployed_until_one_is_given(env_config, load):
    config = env_config("prod")
    config["llmplane:models"][LLAMA_70B]["catalog"]["1.0.1"]["engineRelease"] = "0.34.0"
    problem = expect(load, config, "prod", f"models.{LLAMA_70B}.catalog.1.0.1.engineRelease",
                     "vLLM 0.34.0 has no image pinned by digest, so version 1.0.1 cannot be deployed on it", "0.34.0")
    assert "images.vllm" in problem.fix
    config["llmplane:images"] = {"vllm": {"0.34.0": "registry.dc1.internal/vllm-openai:v0.34.0@sha256:" + "a" * 64}}
    load(config, "prod")


def test_a_value_a_release_does_not_know_is_refused(env_config, load, monkeypatch):
    config = env_config("prod")
    config["llmplane:models"][LLAMA_70B]["engine"]["speculative"] = {"method": "ngram", "numSpeculativeTokens": 3}
    load(config, "prod")
    older = surface("0.14.0")
    monkeypatch.setattr(engine_rules, "surface", lambda release: older.__class__(
        **{**older.__dict__, "speculative_methods": frozenset({"eagle"})}))
    expect(load, config, "prod", f"models.{LLAMA_70B}.engine.speculative.method",
           "vLLM 0.14.0 (version 1.0.0) does not know 'ngram'", "ngram", alone=False)


def test_every_option_the_stack_passes_is_one_validation_checks():
    """engine_flags() is what validation holds against the release; the serving component builds the command line
    on its own. With every feature on, every option it passes must be listed, or a removed flag would slip by."""
    from llmplane.components.serving.engine_args import serve_args
    from llmplane.components.serving.streaming import streamer_args
    from llmplane.spec.models import Model
    from llmplane.stacks.compose import engine_settings

    model = Model.model_validate({
        "parametersBillions": 8, "dtype": "bfloat16", "license": "llama3", "pool": "p",
        "replicas": {"min": 1, "max": 2},
        "architecture": {"contextLength": 8192, "layers": 32, "kvHeads": 8, "headDim": 128},
        "catalog": {"1.0.0": {"uri": "s3://b/m/1.0.0/w.tar", "sha256": "0" * 64,
                              "generationDefaults": {"temperature": 0.2, "topP": 0.9}}},
        "versions": [{"version": "1.0.0", "weight": 100}],
        "weights": {"loadFormat": "runai_streamer"},
        "engine": {"maxNumBatchedTokens": 4096, "quantization": "fp8", "kvCacheDtype": "fp8",
                   "calculateKvScales": True, "enablePrefixCaching": False,
                   "kvOffload": {"backend": "lmcache", "cpuGib": 8},
                   "lora": {"adapters": {"sql": {"uri": "s3://b/a/sql.tar", "sha256": "1" * 64, "rank": 8,
                                                 "sizeMib": 40}}, "maxCpuLoras": 4},
                   "speculative": {"method": "draft_model", "numSpeculativeTokens": 4,
                                   "draft": {"uri": "s3://b/d.tar", "sha256": "2" * 64, "rank": 1, "sizeMib": 900}}},
    })
    passed = [*serve_args("m", "1.0.0", engine_settings(model, "1.0.0")), *streamer_args(8)]
    options = {arg[2:] for arg in passed if arg.startswith("--")}
    assert not options - set(engine_rules.engine_flags(model, "1.0.0")), options - set(engine_rules.engine_flags(
        model, "1.0.0"))


# --- metrics beside each other ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", list(RELEASES))
def test_every_metric_the_dashboards_alerts_autoscalers_and_picker_read_is_exported_by_every_release(version):
    known = surface(version)
    missing = [m.name for m in (*vllm_metrics.VLLM, *vllm_metrics.PICKER_ONLY)
               if m.name.removesuffix("_total") not in known.metrics]
    assert not missing, f"vLLM {version} does not export {missing}"


@pytest.mark.parametrize("version", list(RELEASES))
def test_the_simulator_emits_only_finish_reasons_every_release_emits(version):
    assert set(vllm_metrics.FINISHED_REASONS) <= set(surface(version).finish_reasons)


def test_a_metric_a_release_hides_or_dropped_is_a_warning_naming_the_release(env_config, load, monkeypatch):
    """vLLM 0.14.0 exports vllm:time_per_output_token_seconds only behind --show-hidden-metrics-for-version and
    0.24.0 not at all: a stack that read it would see no series from versions on those releases."""
    assert "vllm:time_per_output_token_seconds" in surface("0.14.0").hidden_metrics
    old = vllm_metrics.Metric("vllm:time_per_output_token_seconds", vllm_metrics.Kind.HISTOGRAM,
                              vllm_metrics.VLLM_LABELS, "deprecated")
    monkeypatch.setattr(engine_rules, "VLLM", (*vllm_metrics.VLLM, old))
    spec = load(env_config("prod"), "prod")
    messages = [w.message for w in engine_rules.metric_warnings(spec)]
    assert any(m.startswith("vLLM 0.14.0 hides vllm:time_per_output_token_seconds") for m in messages), messages
    assert any(m.startswith("vLLM 0.31.0 does not export vllm:time_per_output_token_seconds") for m in messages)


def test_the_shipped_environments_read_no_metric_a_deployed_release_lacks(env_config, load):
    for environment in ("prod", "staging", "dev", "local"):
        assert engine_rules.metric_warnings(load(env_config(environment), environment)) == []


# --- engine features: each a field, a rule with a failing case --------------------------------------------------

def test_an_fp8_kv_cache_is_refused_on_gpus_without_fp8(env_config, load):
    """prod's llama-3-8b also runs on the on-prem A100s (compute capability 8.0)."""
    config = env_config("prod")
    config["llmplane:models"][LLAMA_8B]["engine"]["kvCacheDtype"] = "fp8"
    problem = expect(load, config, "prod", f"models.{LLAMA_8B}.engine.kvCacheDtype",
                     "an fp8 KV cache needs compute capability 8.9 or more; nvidia-a100-80gb has 8.0", "fp8")
    assert "auto" in problem.fix


def test_fp8_kv_scales_without_an_fp8_cache_are_refused(env_config, load):
    config = env_config("prod")
    config["llmplane:models"][LLAMA_70B]["engine"]["calculateKvScales"] = True
    expect(load, config, "prod", f"models.{LLAMA_70B}.engine.calculateKvScales",
           "KV scales are only used by an fp8 KV cache", "true", alone=False)


def test_kv_offload_must_fit_the_replicas_share_of_host_memory(env_config, load):
    """A g6.xlarge has 16 GiB: a replica may offload at most half of it."""
    config = env_config("prod")
    config["llmplane:models"][LLAMA_8B]["engine"]["kvOffload"] = {"cpuGib": 20}
    problem = expect(load, config, "prod", f"models.{LLAMA_8B}.engine.kvOffload.cpuGib",
                     "20 GiB of KV cache per replica exceed 8 GiB, 50% of a replica's share of g6.xlarge (16 GiB, "
                     "1 GPUs) in aws-use1", "20")
    assert problem.fix == "use at most 8 GiB"
    config["llmplane:models"][LLAMA_8B]["engine"]["kvOffload"] = {"cpuGib": 8}
    load(config, "prod")


def test_a_lora_adapter_wider_than_max_lora_rank_is_refused(env_config, load):
    config = env_config("prod")
    config["llmplane:models"][LLAMA_8B]["engine"]["lora"] = {
        "adapters": {"sql": {"uri": "s3://llmplane-models/llama-3-8b/adapters/sql-1.tar", "sha256": "1" * 64,
                             "rank": 64, "sizeMib": 160}},
        "maxLoraRank": 16}
    problem = expect(load, config, "prod", f"models.{LLAMA_8B}.engine.lora.maxLoraRank",
                     "adapters sql have a rank above 16; vLLM refuses to load them", "16")
    assert problem.fix == "raise maxLoraRank to 64"


def test_lora_slots_take_gpu_memory_from_the_kv_cache(env_config, load):
    config = env_config("prod")
    spec = load(config, "prod")
    before = spec.models[LLAMA_8B].kv_room_bytes("nvidia-l4")
    config["llmplane:models"][LLAMA_8B]["engine"]["lora"] = {
        "adapters": {"sql": {"uri": "s3://llmplane-models/llama-3-8b/adapters/sql-1.tar", "sha256": "1" * 64,
                             "rank": 8, "sizeMib": 40}},
        "maxLoras": 4, "maxLoraRank": 16}
    after = load(config, "prod").models[LLAMA_8B].kv_room_bytes("nvidia-l4")
    assert before - after == pytest.approx(4 * 40 * 2**20 * 16 / 8)


def test_a_speculative_method_that_proposes_with_weights_needs_them(env_config, load):
    config = env_config("prod")
    config["llmplane:models"][LLAMA_70B]["engine"]["speculative"] = {"method": "eagle3", "numSpeculativeTokens": 3}
    expect(load, config, "prod", f"models.{LLAMA_70B}.engine.speculative.draft",
           "method eagle3 proposes with its own weights", "(missing)")


def test_generation_defaults_are_bounded_and_reach_only_their_version(env_config, load):
    from llmplane.stacks.compose import engine_settings

    config = env_config("prod")
    catalog = config["llmplane:models"][LLAMA_70B]["catalog"]
    catalog["1.0.1"]["generationDefaults"] = {"temperature": 3}
    with pytest.raises(SpecError) as info:
        load(config, "prod")
    assert any(p.path == f"models.{LLAMA_70B}.catalog.1.0.1.generationDefaults.temperature"
               for p in info.value.problems)
    catalog["1.0.1"]["generationDefaults"] = {"temperature": 0.3, "topP": 0.9}
    model = load(config, "prod").models[LLAMA_70B]
    assert engine_settings(model, "1.0.1").generation_overrides == {"temperature": 0.3, "top_p": 0.9}
    assert engine_settings(model, "1.0.0").generation_overrides == {}


# --- weights served by another version --------------------------------------------------------------------------

def test_a_version_names_its_weights_once(env_config, load):
    config = env_config("prod")
    entry = config["llmplane:models"][LLAMA_70B]["catalog"]["1.0.1"]
    entry["sha256"] = "f" * 64
    expect(load, config, "prod", f"models.{LLAMA_70B}.catalog.1.0.1.weightsOf",
           "version 1.0.1 takes the weights of 1.0.0 but also sets sha256", "1.0.0")


def test_weights_of_names_a_version_that_holds_weights(env_config, load):
    config = env_config("prod")
    config["llmplane:models"][LLAMA_70B]["catalog"]["1.0.1"]["weightsOf"] = "2.0.0"
    expect(load, config, "prod", f"models.{LLAMA_70B}.catalog.1.0.1.weightsOf",
           f"2.0.0 is not another version in the catalog of {LLAMA_70B}", "2.0.0", alone=False)


def test_a_version_without_weights_or_weights_of_is_refused(env_config, load):
    config = env_config("prod")
    config["llmplane:models"][LLAMA_8B]["catalog"]["1.0.0"].pop("sha256")
    problem = expect(load, config, "prod", f"models.{LLAMA_8B}.catalog.1.0.0.sha256", "version 1.0.0 has no sha256",
                     "missing")
    assert "weightsOf" in problem.fix


# --- what the pods of a version are started with ---------------------------------------------------------------

ADAPTER = {"uri": "s3://llmplane-models/llama-3-8b/adapters/sql-1/adapter.tar", "sha256": "1" * 64, "rank": 8,
           "sizeMib": 40}


def _with_features(values):
    engine = values["llmplane:models"][LLAMA_8B]["engine"]
    engine["lora"] = {"adapters": {"sql": ADAPTER}, "maxLoras": 2}
    engine["kvOffload"] = {"cpuGib": 6}


def test_a_versions_pods_serve_its_adapters_by_name_fetched_verified_with_room_for_the_offload():
    from tests.planning import model_servers, plan_of, plan_with

    before = {d.urn: d for d in model_servers(plan_of("prod"))}
    plan = plan_with("prod", _with_features)
    servers = [d for d in model_servers(plan) if d.inputs["metadata"]["labels"]["llmplane.dev/model"] == LLAMA_8B]
    assert servers
    for deployment in servers:
        pod = deployment.inputs["spec"]["template"]["spec"]
        container = pod["containers"][0]
        args = container["args"]
        assert args[args.index("--lora-modules") + 1] == "sql=/models/extra/lora-sql"
        assert args[args.index("--max-loras") + 1] == "2" and "--enable-lora" in args
        assert args[args.index("--kv-offloading-size") + 1] == "6"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert json.loads(env["LLMPLANE_EXTRA_WEIGHTS"]) == {"lora-sql": {"uri": ADAPTER["uri"],
                                                                          "sha256": ADAPTER["sha256"]}}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/models/extra"] == "extra-weights"
        memory = int(container["resources"]["requests"]["memory"].removesuffix("Gi"))
        old = before[deployment.urn].inputs["spec"]["template"]["spec"]["containers"][0]
        assert memory == int(old["resources"]["requests"]["memory"].removesuffix("Gi")) + 6, \
            "the offloaded KV cache is pinned host memory the pod must request"
    pickers = {c.name: yaml.safe_load(c.inputs["data"]["config.yaml"])
               for c in plan.of_type("kubernetes:core/v1:ConfigMap") if c.name.endswith("-epp")}
    assert pickers
    for name, config in pickers.items():
        scorers = {p["pluginRef"] for p in config["schedulingProfiles"][0]["plugins"]}
        assert ("lora-affinity-scorer" in scorers) == (LLAMA_8B in name), name


def test_an_engine_canary_differs_from_stable_only_in_its_engine():
    """prod's llama-3-70b 1.0.1 is 1.0.0's weights on vLLM 0.31.0: with names and the engine's image set aside,
    their pods are the same, and they read the same verified copy of the weights."""
    from tests.planning import model_servers, plan_of

    plan = plan_of("prod")
    by_version = {}
    for deployment in model_servers(plan):
        labels = deployment.inputs["metadata"]["labels"]
        if labels["llmplane.dev/model"] == LLAMA_70B and deployment.name.startswith("aws-use1"):
            by_version[labels["llmplane.dev/model-version"]] = deployment.inputs["spec"]["template"]["spec"]

    def normalized(pod: dict, version: str) -> tuple[str, str]:
        container = pod["containers"][0]
        text = json.dumps({**pod, "containers": [{**container, "image": "<image>"}]}, sort_keys=True)
        return text.replace(version, "<v>").replace(version.replace(".", "-"), "<v>"), container["image"]

    stable, stable_image = normalized(by_version["1.0.0"], "1.0.0")
    canary, canary_image = normalized(by_version["1.0.1"], "1.0.1")
    assert stable_image != canary_image and ":0.31.0-" in canary_image and ":0.14.0-" in stable_image
    weights = [next(v for v in by_version[x]["volumes"] if v["name"] == "node-weights")["hostPath"]["path"]
               for x in ("1.0.0", "1.0.1")]
    assert weights[0] == weights[1]
    # The weights folder names 1.0.0 in both, which the normalization above turned into <v> in the stable only.
    assert canary.replace(weights[0], "<weights>") == stable.replace(weights[0].replace("1.0.0", "<v>"),
                                                                      "<weights>")


def _without_engine_canary(values):
    model = values["llmplane:models"][LLAMA_70B]
    model["versions"] = [v for v in model["versions"] if v["version"] != "1.0.1"]
    model["versions"][0]["weight"] = 100
    del model["catalog"]["1.0.1"]
    model["experiments"] = []


def test_a_review_shows_an_engine_canary_as_an_engine_upgrade_only():
    from llmplane.stacks.review import engine_changes

    from tests.planning import plan_of, plan_with

    before, after = plan_with("prod", _without_engine_canary).resources, plan_of("prod").resources
    assert engine_changes(before, after) == [
        f"- `{LLAMA_70B}` 1.0.1 (aws-use1, aws-usw2): new, the weights of 1.0.0 (sha256 abb8db432f67…) on vLLM "
        "0.31.0, where 1.0.0 runs 0.14.0: an engine upgrade only"]
    assert engine_changes(after, after) == []


def test_a_review_shows_a_release_changed_in_place_with_its_weights_unchanged():
    from llmplane.stacks.review import engine_changes

    from tests.planning import plan_of, plan_with

    def upgrade(values):
        values["llmplane:models"][LLAMA_8B]["engine"]["release"] = "0.24.0"

    lines = engine_changes(plan_of("prod").resources, plan_with("prod", upgrade).resources)
    assert lines == [f"- `{LLAMA_8B}` {v} (aws-use1, aws-usw2, gcp-usc1, onprem-dc1): vLLM 0.14.0 → 0.24.0, weights "
                     "unchanged" for v in ("1.0.0", "1.1.0")]


def test_the_review_markdown_puts_engine_changes_under_their_own_heading():
    from llmplane.stacks.diff import diff_plans
    from llmplane.stacks.review import Review, engine_changes, markdown

    from tests.planning import plan_of, plan_with

    before, after = plan_with("prod", _without_engine_canary).resources, plan_of("prod").resources
    text = markdown(Review("prod", "main", diff_plans(before, after), engine_changes(before, after), [], []))
    head, _, rest = text.partition("#### Engines\n\n")
    assert rest.startswith(f"- `{LLAMA_70B}` 1.0.1 (aws-use1, aws-usw2): new, the weights of 1.0.0")
    assert "**added**" in rest and "**added**" not in head.split("\n")[0]



@pytest.mark.parametrize("environment", ["prod", "staging", "dev", "local"])
def test_every_vllm_pod_is_given_only_options_and_variables_its_release_reads(environment):
    """What the plan deploys, read back: each vLLM container's `--options` and `VLLM_*` variables are ones the
    release it runs (its Deployment's annotation) accepts, by that release's source."""
    from llmplane.components.serving.vllm_service import ENGINE_RELEASE_ANNOTATION

    from tests.planning import model_servers, plan_of

    servers = model_servers(plan_of(environment))
    assert servers
    for deployment in servers:
        release = deployment.inputs["metadata"]["annotations"][ENGINE_RELEASE_ANNOTATION]
        known = surface(release)
        container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
        options = {arg[2:] for arg in container["args"] if arg.startswith("--")}
        assert options and not {o for o in options if not known.accepts(o)}, (deployment.name, release)
        variables = {e["name"] for e in container["env"] if e["name"].startswith("VLLM_")}
        assert variables <= known.environment, (deployment.name, release, variables - known.environment)
