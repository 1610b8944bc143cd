"""The gateway's version split, run by Lua 5.4 as the stack writes it: each request gets the version that answers
it in `x-llmplane-version`, at the spec's weights, sticky per tenant and user, A/B versions on request, and the
route matched again, so that each version's rule names one InferencePool (Envoy AI Gateway refuses two)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from llmplane.components.gateway.version_split import VersionShare, lua_source

from tests.planning import plan_of

HARNESS = Path(__file__).with_name("lua") / "version_split_harness.lua"
LUA = shutil.which("lua5.4")
CANARY = {"llama-3-8b": [VersionShare("1.0.0", 90), VersionShare("1.1.0", 10)],
          "mixtral": [VersionShare("2.0.0", 50), VersionShare("2.1.0", 50, pinnable=True)]}


def lua_string(text: str) -> str:
    assert '"' not in text and "\\" not in text
    return f'"{text}"'


def run(splits: dict, requests: list[dict[str, str]], tmp_path: Path) -> list[dict]:
    return run_source(lua_source(splits), requests, tmp_path)


def run_source(source: str, requests: list[dict[str, str]], tmp_path: Path) -> list[dict]:
    """The version header the filter `source` leaves on each request, and whether it cleared the route cache."""
    if LUA is None:
        pytest.fail("lua5.4 is missing: run `make test-setup` (apt-get install lua5.4)")
    filter_file = tmp_path / "version_split.lua"
    filter_file.write_text(source)
    case = tmp_path / "case.lua"
    case.write_text("return {\n" + ",\n".join(
        "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in r.items()) + "}" for r in requests)
        + "\n}\n")
    done = subprocess.run([LUA, str(HARNESS), str(filter_file), str(case)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def chat(model: str, **headers: str) -> dict[str, str]:
    return {":path": f"/{model}/v1/chat/completions", **headers}


def test_users_split_at_the_spec_weights(tmp_path):
    requests = [chat("llama-3-8b", **{"x-llmplane-client": f"team-{i % 7}.key", "x-llmplane-user": f"user-{i}"})
                for i in range(4000)]
    counts = Counter(r["version"] for r in run(CANARY, requests, tmp_path))
    assert set(counts) == {"1.0.0", "1.1.0"}
    assert 0.08 <= counts["1.1.0"] / len(requests) <= 0.12, counts


def test_requests_without_a_user_split_by_request_id(tmp_path):
    requests = [chat("llama-3-8b", **{"x-request-id": f"9f1c{i:06d}-aa"}) for i in range(4000)]
    counts = Counter(r["version"] for r in run(CANARY, requests, tmp_path))
    assert 0.08 <= counts["1.1.0"] / len(requests) <= 0.12, counts


def test_a_user_stays_on_one_version_across_requests(tmp_path):
    requests = [chat("llama-3-8b", **{"x-llmplane-client": "acme.k1", "x-llmplane-user": f"u{u}",
                                      "x-request-id": f"r{u}-{n}"}) for u in range(40) for n in range(5)]
    results = run(CANARY, requests, tmp_path)
    for user in range(40):
        assert len({r["version"] for r in results[user * 5:(user + 1) * 5]}) == 1


def test_the_same_user_id_of_two_tenants_is_two_users(tmp_path):
    requests = [chat("llama-3-8b", **{"x-llmplane-client": f"tenant-{t}.k", "x-llmplane-user": "alice"})
                for t in range(200)]
    assert len({r["version"] for r in run(CANARY, requests, tmp_path)}) == 2


def test_a_client_cannot_choose_the_canary_by_sending_the_version_header(tmp_path):
    requests = [chat("llama-3-8b", **{"x-llmplane-version": "1.1.0", "x-llmplane-client": "acme.k1",
                                      "x-llmplane-user": f"u{i}"}) for i in range(200)]
    counts = Counter(r["version"] for r in run(CANARY, requests, tmp_path))
    assert counts["1.0.0"] > 150


def test_the_variant_header_pins_ab_versions_only(tmp_path):
    pinned = run(CANARY, [chat("mixtral", **{"x-llmplane-variant": "2.1.0", "x-llmplane-user": f"u{i}"})
                          for i in range(50)], tmp_path)
    assert {r["version"] for r in pinned} == {"2.1.0"}
    not_ab = run(CANARY, [chat("llama-3-8b", **{"x-llmplane-variant": "1.1.0", "x-llmplane-user": f"u{i}"})
                          for i in range(200)], tmp_path)
    assert Counter(r["version"] for r in not_ab)["1.0.0"] > 150


def test_every_request_is_routed_again_and_other_paths_get_no_version(tmp_path):
    results = run(CANARY, [chat("llama-3-8b"), {":path": "/unknown/v1/chat/completions"}, {":path": "/healthz"},
                           {":path": "/llama-3-8b/health"}], tmp_path)
    assert results[0]["cleared"] and results[0]["version"] in ("1.0.0", "1.1.0")
    assert [r["version"] for r in results[1:]] == [None, None, None]
    assert all(r["cleared"] for r in results)


def test_a_version_at_weight_zero_gets_nothing(tmp_path):
    splits = {"m": [VersionShare("1.0.0", 100), VersionShare("2.0.0", 0)]}
    results = run(splits, [chat("m", **{"x-llmplane-user": f"u{i}"}) for i in range(300)], tmp_path)
    assert {r["version"] for r in results} == {"1.0.0"}


def test_weights_that_do_not_sum_to_100_are_refused():
    with pytest.raises(ValueError, match="version split of 'm': the weights sum to 90; they must sum to 100"):
        lua_source({"m": [VersionShare("1.0.0", 80), VersionShare("2.0.0", 10)]})


def users(model: str, count: int) -> list[dict[str, str]]:
    """Requests of `count` distinct users of one tenant."""
    return [chat(model, **{"x-llmplane-client": "t.k", "x-llmplane-user": f"u{i}"}) for i in range(count)]


def test_prods_gateways_run_the_split_before_the_token_meter_with_the_canary_at_10_percent(tmp_path):
    plan = plan_of("prod")
    policies = [r for r in plan.of_type("kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyExtensionPolicy")]
    assert len(policies) == 4  # one per gateway cluster
    for policy in policies:
        [split, meter] = policy.inputs["spec"]["lua"]
        assert "clearRouteCache" in split["inline"] and "x-llmplane-version" in split["inline"]
        assert "LLMPLANE_TOKEN_USAGE" in meter["inline"]
        counts = Counter(r["version"] for r in run_source(split["inline"], users("llama-3-8b", 3000), tmp_path))
        assert 0.08 <= counts["1.1.0"] / 3000 <= 0.12, counts


def test_no_other_header_lets_a_client_pick_the_canary(tmp_path):
    requests = [chat("llama-3-8b", **{"x-llmplane-failover-model": "llama-3-8b@1.1.0", "x-llmplane-user": f"u{i}"})
                for i in range(200)]
    assert Counter(r["version"] for r in run(CANARY, requests, tmp_path))["1.0.0"] > 150
