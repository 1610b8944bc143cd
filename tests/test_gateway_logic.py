"""The gateway logic that is ours, on concrete cases: spec -> rate-limit rules, tenant -> keys and models,
model version -> pool and backendRef, versions -> route rules with one pool each."""

from __future__ import annotations

import re

import pytest
from llmplane.components.gateway.route_refs import pool_backend_ref, pool_name
from llmplane.components.gateway.tenant_budgets import (
    TenantBudget,
    allowed_models,
    api_key_auth,
    client_id,
    key_secret_data,
    objective_priority,
    rate_limit_rules,
    tenant_pattern,
    tenants_of_model,
)
from llmplane.components.serving.model_rollout import RolloutVersion, route_rules

SEARCH = TenantBudget("search", ("llama-3-8b", "llama-3-70b"), ("searchApiKey",), tokens_per_minute=10_000,
                      priority=10)
BATCH = TenantBudget("batch-eval", ("llama-3-70b",), ("batchEvalApiKey", "batchEvalApiKeyNext"),
                     tokens_per_minute=2_000, tokens_per_day=1_000_000, priority=-5)


def test_a_tenant_with_10k_tokens_per_minute_gets_exactly_one_shared_token_bucket():
    assert rate_limit_rules([SEARCH]) == [{
        "clientSelectors": [{"headers": [{"name": "x-llmplane-client", "type": "RegularExpression",
                                          "value": r"^search\.[^.]+$"}]}],
        "limit": {"requests": 10000, "unit": "Minute"},
        "cost": {"request": {"from": "Number", "number": 0},
                 "response": {"from": "Metadata", "metadata": {"namespace": "llmplane.usage",
                                                               "key": "total_tokens"}}},
        "shared": True,
        "xRateLimitHeaders": "DraftVersion03",
    }]


def test_a_minute_and_a_day_budget_are_two_buckets_of_one_tenant():
    rules = rate_limit_rules([BATCH])
    assert [(r["limit"]["requests"], r["limit"]["unit"]) for r in rules] == [(2000, "Minute"), (1000000, "Day")]
    assert {r["clientSelectors"][0]["headers"][0]["value"] for r in rules} == {r"^batch\-eval\.[^.]+$"}


def test_a_tenants_pattern_matches_its_keys_and_no_other_tenants():
    pattern = re.compile(tenant_pattern("search"))
    assert pattern.match(client_id("search", "searchApiKey"))
    for other in ("search-2.key", "searchx.key", "research.key", "search.", "search.a.b"):
        assert not pattern.match(other), other


def test_a_tenant_without_budget_or_key_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="tenant 'x' has no token budget: set tokens_per_minute, tokens_per_day"):
        TenantBudget("x", ("m",), ("k",))
    with pytest.raises(ValueError, match="tenant 'x' has no API key: name at least one key in key_names"):
        TenantBudget("x", ("m",), (), tokens_per_day=5)


def test_keys_become_client_ids_of_their_tenant():
    assert key_secret_data(BATCH, {"batchEvalApiKey": "k1", "batchEvalApiKeyNext": "k2", "searchApiKey": "k3"}) == {
        "batch-eval.batchEvalApiKey": "k1", "batch-eval.batchEvalApiKeyNext": "k2"}


def test_a_missing_key_names_the_config_command():
    with pytest.raises(ValueError) as info:
        key_secret_data(BATCH, {"batchEvalApiKey": "k1"})
    assert str(info.value) == (
        "tenant 'batch-eval' names API keys that are not in llmplane:secrets: batchEvalApiKeyNext; set each with: "
        "pulumi config set --secret --path 'llmplane:secrets.<key>' <value>")


def test_a_models_route_accepts_the_keys_of_the_tenants_allowed_to_call_it_only():
    assert tenants_of_model([SEARCH, BATCH], "llama-3-8b") == ["search"]
    assert tenants_of_model([SEARCH, BATCH], "llama-3-70b") == ["search", "batch-eval"]
    assert allowed_models([SEARCH, BATCH]) == {"search": ("llama-3-8b", "llama-3-70b"), "batch-eval": ("llama-3-70b",)}
    assert api_key_auth(["search", "batch-eval"]) == {
        "credentialRefs": [{"group": "", "kind": "Secret", "name": "tenant-search-api-keys"},
                           {"group": "", "kind": "Secret", "name": "tenant-batch-eval-api-keys"}],
        "extractFrom": [{"headers": ["x-api-key"]}],
        "forwardClientIDHeader": "x-llmplane-client",
        "sanitize": False,
    }
    with pytest.raises(ValueError, match="no tenant may call this model"):
        api_key_auth([])


def test_priorities_other_than_the_default():
    assert objective_priority([SEARCH, BATCH, TenantBudget("t", ("m",), ("k",), tokens_per_day=1)]) == {
        "search": 10, "batch-eval": -5}


HOSTS = {"a": "a.llm.example", "b": "b.llm.example", "c": "c.llm.example"}


def test_a_pool_backend_ref_names_the_versions_pool_and_carries_no_filters():
    assert pool_backend_ref("llama-3-8b", "1.1.0", 10) == {
        "group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llama-3-8b-v1-1-0", "weight": 10}


@pytest.mark.parametrize(("version", "name"), [("1.0.0", "llama-3-8b-v1-0-0"), ("1.1.0", "llama-3-8b-v1-1-0"),
                                               ("2.0.0-rc.1", "llama-3-8b-v2-0-0-rc-1")])
def test_a_pool_is_named_like_its_versions_deployment(version, name):
    assert pool_name("llama-3-8b", version) == name


POOLS = [RolloutVersion("1.0.0", 90, "stable", pool_backend_ref("m", "1.0.0")),
         RolloutVersion("1.1.0", 10, "canary", pool_backend_ref("m", "1.1.0"))]


def test_two_pools_cannot_share_a_weighted_rule():
    with pytest.raises(ValueError, match="one rule may name at most one pool .*split='version_header'"):
        route_rules("m", POOLS)


def test_by_version_header_each_version_gets_one_rule_and_the_rest_goes_to_stable():
    rules = route_rules("m", POOLS, split="version_header", served_by={"1.0.0": "m@1.0.0/a", "1.1.0": "m@1.1.0/a"})
    serving = [r for r in rules if r["matches"][0]["path"]["value"] == "/m/v1"]
    assert [(r["matches"][0].get("headers"), [b["name"] for b in r["backendRefs"]]) for r in serving] == [
        ([{"name": "x-llmplane-version", "value": "1.0.0"}], ["m-v1-0-0"]),
        ([{"name": "x-llmplane-version", "value": "1.1.0"}], ["m-v1-1-0"]),
        (None, ["m-v1-0-0"])]
    assert [f["responseHeaderModifier"]["set"][0]["value"] for r in serving for f in r["filters"]
            if f["type"] == "ResponseHeaderModifier"] == ["m@1.0.0/a", "m@1.1.0/a", "m@1.0.0/a"]
    [health] = [r for r in rules if r["matches"][0]["path"]["value"] == "/m/health"]
    assert [b["name"] for b in health["backendRefs"]] == ["m-v1-0-0"]
