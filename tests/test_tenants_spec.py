"""The gateway sections of the spec: tenants, fallbacks, certificates and DNS (`spec/gateway_rules.py`).

Each case starts from a shipped environment, changes one thing, and pins what the user is told: the path as
written in the file, the message, the offending value and the fix.
"""

from __future__ import annotations

import pytest
from llmplane.spec import PlatformSpec, Problem, SpecError, gateway_rules
from llmplane.spec.load import spec_data


def expect(load, config, environment, rule, path, message, value=None) -> Problem:
    """Loading fails with exactly this problem, rendered in the report, and `rule` is what finds it."""
    with pytest.raises(SpecError) as info:
        load(config, environment)
    error = info.value
    assert [(p.path, p.message) for p in error.problems] == [(path, message)], error.render()
    problem = error.problems[0]
    if value is not None:
        assert problem.value == value
    assert f"  - {path}: {message}\n      value: {problem.value}\n      fix:   {problem.fix}" in error.render()
    spec = PlatformSpec.model_validate(spec_data(config, environment))
    assert problem in list(rule(spec))
    return problem


def tenant(config, name):
    return next(t for t in config["llmplane:tenants"] if t["name"] == name)


def test_every_tenancy_rule_has_failing_cases_here():
    tested = {name.removeprefix("test_").split("__")[0] for name in globals() if name.startswith("test_")}
    assert {rule.__name__ for rule in gateway_rules.TENANCY_RULES} <= tested


@pytest.mark.parametrize("environment", ["dev", "local", "staging", "prod"])
def test_every_shipped_environment_has_budgeted_tenants(environment, env_config, load):
    spec = load(env_config(environment), environment)
    assert spec.tenants
    for t in spec.tenants:
        assert t.tokens_per_minute or t.tokens_per_day
        assert set(t.models) <= set(spec.models)


def test_prod_tenants_as_written_and_no_fallback(env_config, load):
    spec = load(env_config("prod"), "prod")
    assert [(t.name, t.priority) for t in spec.tenants] == [("search", 10), ("support-bot", 0), ("batch-eval", -10)]
    assert all(model.fallback is None for model in spec.models.values())
    assert spec.gateway.implementation == "envoy-gateway"
    assert spec.gateway.tls_issuer == {"aws": "acme-dns01", "gcp": "acme-dns01", "onprem": "private-ca"}


# --- tenants ------------------------------------------------------------------------------------------------------


def test_tenants__unknown_model(env_config, load):
    config = env_config("prod")
    tenant(config, "search")["models"].append("llama-4-400b")
    problem = expect(load, config, "prod", gateway_rules.tenants, "tenants.search.models",
                     "model 'llama-4-400b' does not exist", "llama-4-400b")
    assert problem.fix == "use one of: llama-3-70b, llama-3-8b"


def test_tenants__without_a_budget(env_config, load):
    config = env_config("staging")
    t = tenant(config, "search")
    del t["tokensPerMinute"], t["tokensPerDay"]
    problem = expect(load, config, "staging", gateway_rules.tenants, "tenants.search",
                     "tenant 'search' has no token budget", "(none)")
    assert problem.fix == "add tokensPerMinute, tokensPerDay or both"


def test_tenants__a_day_below_a_minute(env_config, load):
    config = env_config("dev")
    tenant(config, "platform-dev").update(tokensPerMinute=100000, tokensPerDay=99999)
    problem = expect(load, config, "dev", gateway_rules.tenants, "tenants.platform-dev.tokensPerDay",
                     "99999 tokens per day is less than the 100000 tokens per minute",
                     "tokensPerDay=99999, tokensPerMinute=100000")
    assert problem.fix == "raise tokensPerDay to at least tokensPerMinute, or lower tokensPerMinute"


def test_tenants__one_budget_is_enough(env_config, load):
    spec = load(env_config("prod"), "prod")
    batch = next(t for t in spec.tenants if t.name == "batch-eval")
    assert (batch.tokens_per_minute, batch.tokens_per_day) == (None, 500000000)


def test_tenants__names_are_unique(env_config, load):
    config = env_config("staging")
    tenant(config, "support-bot")["name"] = "search"
    tenant(config, "search")["apiKeySecrets"] = ["searchApiKey"]
    config["llmplane:tenants"][1]["apiKeySecrets"] = ["otherApiKey"]
    expect(load, config, "staging", gateway_rules.tenants, "tenants", "tenant name 'search' is used twice", "search")


def test_tenants__a_key_belongs_to_one_tenant(env_config, load):
    config = env_config("prod")
    tenant(config, "batch-eval")["apiKeySecrets"] = ["searchApiKey"]
    problem = expect(load, config, "prod", gateway_rules.tenants, "tenants.batch-eval.apiKeySecrets",
                     "'searchApiKey' is already an API key of tenant 'search'", "searchApiKey")
    assert problem.fix == "give every tenant keys of its own"


@pytest.mark.parametrize("key", ["vllmApiKey", "onpremKubeconfig", "storageCredentials"])
def test_tenants__platform_secrets_are_not_api_keys(env_config, load, key):
    config = env_config("prod")
    tenant(config, "support-bot")["apiKeySecrets"] = [key]
    problem = expect(load, config, "prod", gateway_rules.tenants, "tenants.support-bot.apiKeySecrets",
                     f"'{key}' holds a platform secret, not a tenant's API key", key)
    assert problem.fix == "store the tenant's key under its own name, e.g. supportbotApiKey"


@pytest.mark.parametrize("mutate, path, message", [
    (lambda t: t.update(tokensPerMinute=0), "tenants.search.tokensPerMinute",
     "input should be greater than or equal to 1"),
    (lambda t: t.update(apiKeySecrets=[]), "tenants.search.apiKeySecrets",
     "list should have at least 1 item after validation, not 0"),
    (lambda t: t.update(apiKeySecrets=["search key"]), "tenants.search.apiKeySecrets.0",
     "string should match pattern '^[A-Za-z][A-Za-z0-9_-]{0,62}$'"),
    (lambda t: t.update(priority=5000), "tenants.search.priority", "input should be less than or equal to 1000"),
    (lambda t: t.update(quota=5), "tenants.search.quota", "unknown setting"),
])
def test_tenants__shape_errors_name_the_field(env_config, load, mutate, path, message):
    config = env_config("prod")
    mutate(tenant(config, "search"))
    with pytest.raises(SpecError) as info:
        load(config, "prod")
    assert [(p.path, p.message) for p in info.value.problems] == [(path, message)], info.value.render()


# --- fallbacks ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fallback", [{"model": "llama-3-8b"}, {"otherClusters": True},
                                      {"model": "llama-3-8b", "version": "1.0.0"}])
def test_fallbacks__refused_since_the_gateway_cannot_fail_over(env_config, load, fallback):
    config = env_config("prod")
    config["llmplane:models"]["llama-3-70b"]["fallback"] = fallback
    problem = expect(load, config, "prod", gateway_rules.fallbacks, "models.llama-3-70b.fallback",
                     "the gateway cannot fail a model over to other clusters or another model (Envoy AI Gateway "
                     "v1.1.0 gives InferencePool rules no priority levels; see docs/gateway.md)")
    assert problem.fix == "remove fallback: whole clusters fail over by DNS in routing.failoverOrder"


# --- gateway_kubernetes -------------------------------------------------------------------------------------------


def test_gateway_kubernetes__1_36_refuses_the_budget_crd(env_config, load):
    config = env_config("prod")
    config["llmplane:clusters"][0]["kubernetesVersion"] = "1.36"
    name = config["llmplane:clusters"][0]["name"]
    problem = expect(load, config, "prod", gateway_rules.gateway_kubernetes, f"clusters.{name}.kubernetesVersion",
                     "Kubernetes 1.36 refuses the token-budget CRD of Envoy Gateway v1.8.1", "1.36")
    assert problem.fix.startswith("use 1.35 or older")


def test_gateway_kubernetes__1_35_is_fine(env_config, load):
    config = env_config("prod")
    config["llmplane:clusters"][0]["kubernetesVersion"] = "1.35"
    load(config, "prod")


# --- gateway ------------------------------------------------------------------------------------------------------


def test_gateway__acme_needs_a_zone(env_config, load):
    config = env_config("dev")
    del config["llmplane:gateway"]["dnsZone"]
    problem = expect(load, config, "dev", gateway_rules.gateway, "gateway.dnsZone",
                     "ACME DNS-01 for the aws clusters needs a DNS zone", "(none)")
    assert problem.fix == "set gateway.dnsZone or routing.hostedZone, or use private-ca"


def test_gateway__acme_needs_an_email(env_config, load):
    config = env_config("prod")
    del config["llmplane:gateway"]["acmeEmail"]
    expect(load, config, "prod", gateway_rules.gateway, "gateway.acmeEmail", "ACME DNS-01 needs a contact address")


def test_gateway__gcp_names_its_managed_zone(env_config, load):
    config = env_config("prod")
    del config["llmplane:gateway"]["gcpManagedZone"]
    problem = expect(load, config, "prod", gateway_rules.gateway, "gateway.gcpManagedZone",
                     "the gcp clusters write llmplane.dev through Cloud DNS, which names the zone by its managed zone",
                     "(none)")
    assert problem.fix == "set gateway.gcpManagedZone to the managed zone of llmplane.dev"


def test_gateway__onprem_has_no_dns_for_acme(env_config, load):
    config = env_config("local")
    config["llmplane:gateway"]["tlsIssuer"] = {"onprem": "acme-dns01"}
    problem = expect(load, config, "local", gateway_rules.gateway, "gateway.tlsIssuer.onprem",
                     "an on-prem cluster has no cloud DNS to answer ACME DNS-01", "acme-dns01")
    assert problem.fix == "use private-ca for onprem"


def test_gateway__the_zone_holds_the_hostname(env_config, load):
    config = env_config("dev")
    config["llmplane:gateway"]["dnsZone"] = "example.com"
    problem = expect(load, config, "dev", gateway_rules.gateway, "gateway.dnsZone",
                     "the hostname llm.dev.llmplane.dev is not in the zone example.com", "example.com")
    assert problem.fix == "use the zone that holds llm.dev.llmplane.dev, e.g. dev.llmplane.dev"


def test_gateway__private_ca_everywhere_needs_no_zone(env_config, load):
    config = env_config("dev")
    config["llmplane:gateway"] = {"tlsIssuer": {"aws": "private-ca"}}
    assert load(config, "dev").gateway.tls_issuer == {"aws": "private-ca"}


def test_gateway__every_cloud_has_an_issuer(env_config, load):
    config = env_config("prod")
    config["llmplane:gateway"]["tlsIssuer"] = {"aws": "acme-dns01", "onprem": "private-ca"}
    problem = expect(load, config, "prod", gateway_rules.gateway, "gateway.tlsIssuer", "no issuer for the gcp clusters",
                     "aws=acme-dns01, onprem=private-ca")
    assert problem.fix == "add gcp: acme-dns01"


def test_secret_values_never_reach_the_spec(env_config, load):
    spec = load(env_config("local"), "local")
    assert "tenant-local-dev" not in spec.model_dump_json()
