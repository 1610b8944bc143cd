"""The gateway logic that is ours, on concrete cases: spec -> rate-limit rules, tenant -> keys and models,
model -> fallback chain and backendRefs."""

from __future__ import annotations

import re

import pytest

from components.gateway.routing import (
    FAILOVER_HEADER,
    Hop,
    ServedVersion,
    failover_backend,
    failover_backend_refs,
    failover_entry_rules,
    fallback_chain,
    pool_backend_ref,
    pool_name,
)
from components.gateway.tenancy import (
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
from components.serving.vllm_service import resource_name

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


def test_a_model_in_clusters_a_and_b_with_fallback_m2_fails_over_a_then_b_then_m2():
    assert fallback_chain("m1", "a", ["a", "b"], HOSTS, fallback_model="m2", fallback_clusters=["a", "b"]) == [
        Hop("m1", "b", "b.llm.example"), Hop("m2", "a", "a.llm.example")]
    assert fallback_chain("m1", "b", ["a", "b"], HOSTS, fallback_model="m2", fallback_clusters=["a", "b"]) == [
        Hop("m1", "a", "a.llm.example"), Hop("m2", "b", "b.llm.example")]


def test_a_fallback_model_elsewhere_and_a_pinned_version():
    chain = fallback_chain("m1", "a", ["a", "b"], HOSTS, other_clusters=False, fallback_model="m2",
                           fallback_version="1.0.0", fallback_clusters=["c"])
    assert chain == [Hop("m2", "c", "c.llm.example", "1.0.0")]
    assert chain[0].target == "m2@1.0.0"
    assert chain[0].backend_name == "failover-m2-v1-0-0-c"


def test_a_single_cluster_model_without_fallback_has_no_chain():
    assert fallback_chain("m1", "a", ["a"], HOSTS) == []


def test_a_chain_needs_every_hostname():
    with pytest.raises(ValueError, match="no regional hostname for cluster"):
        fallback_chain("m1", "a", ["a", "z"], HOSTS)


def test_failover_backends_name_the_model_to_answer_and_stand_by_only():
    chain = [Hop("m1", "b", "b.llm.example"), Hop("m2", "a", "a.llm.example")]
    refs = failover_backend_refs(chain)
    assert [(r["kind"], r["name"], r["filters"][0]["requestHeaderModifier"]["set"]) for r in refs] == [
        ("Backend", "failover-m1-b", [{"name": FAILOVER_HEADER, "value": "m1"}]),
        ("Backend", "failover-m2-a", [{"name": FAILOVER_HEADER, "value": "m2"}])]
    assert failover_backend(chain[0]) == {
        "endpoints": [{"fqdn": {"hostname": "b.llm.example", "port": 443}}], "fallback": True,
        "tls": {"wellKnownCACertificates": "System", "sni": "b.llm.example"}}


def test_a_pool_backend_ref_names_who_answered():
    assert pool_backend_ref("llama-3-8b", "1.1.0", "aws-use1", 10) == {
        "group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llama-3-8b-v1-1-0", "weight": 10,
        "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
            "set": [{"name": "x-llmplane-served-by", "value": "llama-3-8b@1.1.0/aws-use1"}]}}]}


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0", "2.0.0-rc.1"])
def test_a_pool_is_named_like_its_versions_service(version):
    assert pool_name("llama-3-8b", version) == resource_name("llama-3-8b", version)


def test_the_failover_entry_answers_with_the_split_or_a_pinned_version_and_never_fails_over_again():
    rules = failover_entry_rules("m2", [ServedVersion("1.0.0", 90), ServedVersion("1.1.0", 10)], "a")
    assert [r["matches"][0]["headers"][0]["value"] for r in rules] == ["m2@1.0.0", "m2@1.1.0", "m2"]
    assert [(b["name"], b["weight"]) for b in rules[-1]["backendRefs"]] == [("m2-v1-0-0", 90), ("m2-v1-1-0", 10)]
    assert all(b["kind"] == "InferencePool" for r in rules for b in r["backendRefs"])
    assert {r["filters"][0]["requestHeaderModifier"]["set"][0]["value"] for r in rules} == {"m2"}
    with pytest.raises(ValueError, match="no version that answers users"):
        failover_entry_rules("m2", [], "a")
