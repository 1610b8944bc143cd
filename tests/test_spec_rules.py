"""The environment spec, as a readable specification.

Every test starts from a shipped environment, changes as little as possible, and pins what the user is told:
the path as written in the environment file, the message, the offending value, and a fix. Rules are grouped by
the function in `spec/rules.py` that enforces them; shape errors come from pydantic, rewritten by
`spec/errors.py`.
"""

from __future__ import annotations

import copy
import inspect

import pytest
from llmplane.spec import PlatformSpec, Problem, SpecError, load_spec, rules
from llmplane.spec.load import spec_data
from llmplane.stacks.environments import known_environments, read_stack_config

SHIPPED = known_environments()


def failure(load, config, environment) -> SpecError:
    """The SpecError the loader raises for this config."""
    with pytest.raises(SpecError) as info:
        load(config, environment)
    error = info.value
    assert error.environment == environment
    for problem in error.problems:
        assert problem.path and problem.message and problem.fix.strip(), problem
    return error


def expect(load, config, environment, path, message, value=None, *, alone=True, rule=None) -> Problem:
    """Loading fails with this problem (the only one unless `alone=False`), listed in the rendered report.

    With `rule`, the problem must also come from that rule function itself.
    """
    error = failure(load, config, environment)
    found = [p for p in error.problems if (p.path, p.message) == (path, message)]
    assert found, f"expected {path}: {message}\ngot:\n{error.render()}"
    problem = found[0]
    if alone:
        assert error.problems == [problem], error.render()
    if value is not None:
        assert problem.value == value
    text = error.render()
    assert f"  - {path}: {message}\n      value: {problem.value}\n      fix:   {problem.fix}" in text
    assert "Traceback" not in text
    if rule is not None:
        spec = PlatformSpec.model_validate(spec_data(config, environment))
        assert problem in list(rule(spec))
    return problem


class RuleCases:
    """Failing cases of one rule function of `rules.RULES` (subclasses name it in `rule`)."""

    rule = None

    def expect(self, load, config, environment, path, message, value=None, *, alone=True) -> Problem:
        return expect(load, config, environment, path, message, value, alone=alone, rule=type(self).rule)


# --- the shipped environments -------------------------------------------------------------------------------------


def test_the_four_environments_are_shipped():
    assert SHIPPED == ["dev", "local", "prod", "staging"]


@pytest.mark.parametrize("environment", SHIPPED)
def test_every_shipped_environment_is_valid(environment, env_config, load):
    spec = load(env_config(environment), environment)
    assert spec.environment == environment
    assert rules.check(spec) == []


@pytest.mark.parametrize("environment", SHIPPED)
def test_shipped_files_validate_as_read_from_disk(environment):
    config = read_stack_config(environment)
    assert load_spec(config.values, config.environment).environment == environment


def test_prod_has_the_shape_the_design_describes(env_config, load):
    spec = load(env_config("prod"), "prod")
    assert sorted((c.cloud, c.region) for c in spec.clusters) == [
        ("aws", "us-east-1"), ("aws", "us-west-2"), ("gcp", "us-central1"), ("onprem", "dc1")]
    canary = [v for v in spec.models["llama-3-8b"].versions if v.role == "canary"]
    assert [(v.version, v.weight) for v in canary] == [("1.1.0", 10)]
    assert [link.onprem_cluster for link in spec.hybrid] == ["onprem-dc1"]


def test_every_rule_has_failing_cases_here():
    covered = {cls.rule for cls in globals().values() if inspect.isclass(cls) and issubclass(cls, RuleCases)}
    assert covered - {None} == set(rules.RULES)


# --- unique_names -------------------------------------------------------------------------------------------------


class TestNamesAreUnique(RuleCases):
    rule = rules.unique_names

    def test_cluster_names_are_unique(self, env_config, load):
        config = env_config("dev")
        config["llmplane:clusters"].append(copy.deepcopy(config["llmplane:clusters"][0]))
        problem = self.expect(load, config, "dev", "clusters", "cluster name 'aws-use1' is used twice", "aws-use1")
        assert problem.fix == "give every cluster its own name"

    def test_pool_names_are_unique_in_a_cluster(self, env_config, load):
        config = env_config("dev")
        pools = config["llmplane:clusters"][0]["pools"]
        pools.append(copy.deepcopy(pools[0]))
        self.expect(load, config, "dev", "clusters.aws-use1.pools", "pool name 'inference' is used twice", "inference")

    def test_a_version_is_deployed_once(self, env_config, load):
        config = env_config("staging")
        config["llmplane:models"]["llama-3-8b"]["versions"][1]["version"] = "1.0.0"
        problem = self.expect(load, config, "staging", "models.llama-3-8b.versions", "version 1.0.0 is deployed twice",
                              "1.0.0")
        assert problem.fix == "list each version once"

    def test_hybrid_link_names_are_unique(self, env_config, load):
        config = env_config("prod")
        config["llmplane:hybrid"].append(copy.deepcopy(config["llmplane:hybrid"][0]))
        self.expect(load, config, "prod", "hybrid", "link name 'dc1' is used twice", "dc1")

    def test_a_zone_is_listed_once(self, env_config, load):
        config = env_config("dev")
        zones = config["llmplane:clusters"][0]["zones"]
        zones.append(zones[0])
        problem = self.expect(load, config, "dev", "clusters.aws-use1.zones", f"zone {zones[0]} is listed twice",
                              zones[0])
        assert problem.fix == "list each zone once"

    def test_a_link_lists_each_cloud_cluster_and_network_once(self, env_config, load):
        config = env_config("prod")
        link = config["llmplane:hybrid"][0]
        link["cloudClusters"].append("aws-use1")
        link["onpremCidrs"].append(link["onpremCidrs"][0])
        self.expect(load, config, "prod", "hybrid.dc1.cloudClusters", "cluster 'aws-use1' is listed twice",
                    "aws-use1", alone=False)
        self.expect(load, config, "prod", "hybrid.dc1.onpremCidrs", "network 10.100.0.0/16 is listed twice",
                    "10.100.0.0/16", alone=False)


# --- routed_networks_disjoint -------------------------------------------------------------------------------------


class TestRoutedNetworksDisjoint(RuleCases):
    rule = rules.routed_networks_disjoint

    def test_two_linked_cloud_networks_may_not_overlap(self, env_config, load):
        config = env_config("prod")
        config["llmplane:clusters"][1]["networkCidr"] = "10.10.128.0/17"  # inside aws-use1's 10.10.0.0/16
        problem = self.expect(load, config, "prod", "clusters.aws-use1.networkCidr",
                              "aws-use1's network 10.10.0.0/16 overlaps aws-usw2's network 10.10.128.0/17, and the "
                              "two route to each other", "10.10.0.0/16")
        assert problem.fix == "renumber one of them so no routed networks overlap"

    def test_a_site_network_may_not_overlap_a_gke_pod_range(self, env_config, load):
        config = env_config("prod")
        pods = rules.gke_secondary_ranges("10.30.0.0/16")["pods"]
        config["llmplane:hybrid"][0]["onpremCidrs"].append(pods)
        self.expect(load, config, "prod", "hybrid.dc1.onpremCidrs",
                    f"dc1's on-prem network {pods} overlaps gcp-usc1's GKE pods range {pods}, and the two route to "
                    "each other", pods)

    def test_two_site_networks_of_one_link_may_not_overlap(self, env_config, load):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["onpremCidrs"].append("10.100.4.0/24")
        self.expect(load, config, "prod", "hybrid.dc1.onpremCidrs",
                    "dc1's on-prem network 10.100.0.0/16 overlaps dc1's on-prem network 10.100.4.0/24, and the two "
                    "route to each other", "10.100.0.0/16")

    def test_unlinked_clusters_may_reuse_addresses(self, env_config, load):
        config = env_config("staging")
        config["llmplane:clusters"][1]["networkCidr"] = config["llmplane:clusters"][0]["networkCidr"]
        load(config, "staging")


# --- min_at_most_max ----------------------------------------------------------------------------------------------


class TestMinAtMostMax(RuleCases):
    rule = rules.min_at_most_max

    def test_pool_min_nodes_at_most_max(self, env_config, load):
        config = env_config("dev")
        config["llmplane:clusters"][0]["pools"][0]["nodes"] = {"min": 5, "max": 3}
        problem = self.expect(load, config, "dev", "clusters.aws-use1.pools.inference.nodes", "min 5 is above max 3",
                              "min=5, max=3")
        assert problem.fix == "make min at most max"

    def test_on_demand_base_within_max_nodes(self, env_config, load):
        config = env_config("staging")
        config["llmplane:clusters"][1]["pools"][0]["onDemandBase"] = 5
        problem = self.expect(load, config, "staging", "clusters.aws-usw2.pools.inference.onDemandBase",
                              "on-demand base 5 exceeds max nodes 4", "5")
        assert problem.fix == "lower onDemandBase or raise nodes.max"

    def test_model_min_replicas_at_most_max(self, env_config, load):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["replicas"] = {"min": 3, "max": 2}
        self.expect(load, config, "dev", "models.llama-3-8b.replicas", "min 3 is above max 2", "min=3, max=2")

    def test_version_min_replicas_at_most_max(self, env_config, load):
        config = env_config("staging")
        config["llmplane:models"]["llama-3-8b"]["versions"][1]["replicas"] = {"min": 2, "max": 1}
        self.expect(load, config, "staging", "models.llama-3-8b.versions.1.1.0.replicas", "min 2 is above max 1",
                    "min=2, max=1")


# --- regions_and_gpus ---------------------------------------------------------------------------------------------


class TestRegionsAndGpus(RuleCases):
    rule = rules.regions_and_gpus

    @pytest.mark.parametrize(
        ("index", "region", "path", "message"),
        [
            (0, "us-east-9", "clusters.aws-use1.region", "'us-east-9' is not a region of aws"),
            (2, "us-central-1", "clusters.gcp-usc1.region", "'us-central-1' is not a region of gcp"),
            (0, "us-central1", "clusters.aws-use1.region", "'us-central1' is not a region of aws"),
        ],
    )
    def test_region_exists_in_its_cloud(self, env_config, load, index, region, path, message):
        config = env_config("prod")
        config["llmplane:clusters"][index]["region"] = region
        problem = self.expect(load, config, "prod", path, message, repr(region))
        assert problem.fix.startswith("use one of: ")
        assert ("us-east-1" in problem.fix) == (index == 0)

    def test_region_with_a_stray_newline_is_shown_quoted_on_one_line(self, env_config, load):
        config = env_config("dev")
        config["llmplane:clusters"][0]["region"] = "us-east-1\n"
        self.expect(load, config, "dev", "clusters.aws-use1.region", "'us-east-1\\n' is not a region of aws",
                    "'us-east-1\\n'")

    def test_onprem_site_names_are_free(self, env_config, load):
        config = env_config("prod")
        config["llmplane:clusters"][3]["region"] = "Basement, rack 7"
        load(config, "prod")

    def test_gpu_type_is_offered_in_the_region(self, env_config, load):
        config = env_config("prod")
        config["llmplane:clusters"][2]["pools"][0]["gpuType"] = "nvidia-l40s"
        problem = self.expect(load, config, "prod", "clusters.gcp-usc1.pools.inference.gpuType",
                              "nvidia-l40s is not offered in gcp us-central1", "nvidia-l40s")
        assert problem.fix == ("use one of: nvidia-a100-40gb, nvidia-a100-80gb, nvidia-h100-80gb, nvidia-h200-141gb, "
                               "nvidia-l4")

    def test_region_that_lacks_the_gpu_type(self, env_config, load):
        config = env_config("dev")
        config["llmplane:clusters"][0].update(region="us-west-1", zones=["us-west-1a", "us-west-1b"])
        problem = self.expect(load, config, "dev", "clusters.aws-use1.pools.inference.gpuType",
                              "nvidia-l4 is not offered in aws us-west-1", "nvidia-l4")
        assert problem.fix == "use one of: nvidia-a10g"

    def test_cloud_has_a_machine_with_that_many_gpus(self, env_config, load):
        config = env_config("dev")
        config["llmplane:clusters"][0]["pools"][0]["gpusPerNode"] = 2
        problem = self.expect(load, config, "dev", "clusters.aws-use1.pools.inference.gpusPerNode",
                              "aws has no machine with 2 x nvidia-l4", "2")
        assert problem.fix == "use one of: 1, 4, 8"


# --- cloud_zones --------------------------------------------------------------------------------------------------


class TestCloudZones(RuleCases):
    rule = rules.cloud_zones

    @pytest.mark.parametrize(
        ("index", "zone", "message", "fix"),
        [
            (0, "us-west-2a", "zone us-west-2a is in region us-west-2, not in the cluster's region us-east-1",
             "use zones of us-east-1, e.g. us-east-1a, us-east-1b, us-east-1c"),
            (2, "europe-west4-a", "zone europe-west4-a is in region europe-west4, not in the cluster's region "
             "us-central1", "use zones of us-central1, e.g. us-central1-a, us-central1-b, us-central1-c"),
        ],
        ids=["aws", "gcp"],
    )
    def test_a_zone_lies_in_the_clusters_region(self, env_config, load, index, zone, message, fix):
        config = env_config("prod")
        cluster = config["llmplane:clusters"][index]
        cluster["zones"][1] = zone
        problem = self.expect(load, config, "prod", f"clusters.{cluster['name']}.zones", message, zone)
        assert problem.fix == fix

    @pytest.mark.parametrize(
        ("index", "zone"),
        [(0, "use1-az1"), (0, "us-east-1"), (0, "us-east-1-bos-1a"), (0, "us-central1-a"), (2, "us-central1a"),
         (2, "us-east-1a")],
    )
    def test_a_zone_has_its_clouds_name_form(self, env_config, load, index, zone):
        config = env_config("prod")
        cluster = config["llmplane:clusters"][index]
        cluster["zones"][1] = zone
        self.expect(load, config, "prod", f"clusters.{cluster['name']}.zones",
                    f"{zone} is not a {cluster['cloud']} zone name", zone)

    @pytest.mark.parametrize(("zones", "value"), [(["us-east-1a"], "us-east-1a"), ([], "(none)")])
    def test_an_eks_cluster_spans_two_zones(self, env_config, load, zones, value):
        config = env_config("dev")
        config["llmplane:clusters"][0]["zones"] = zones
        problem = self.expect(load, config, "dev", "clusters.aws-use1.zones",
                              f"an EKS cluster needs subnets in at least two zones; {len(zones)} given", value)
        assert problem.fix == "list two or more zones of us-east-1, e.g. us-east-1a, us-east-1b, us-east-1c"

    def test_onprem_zones_are_free_and_a_gke_cluster_may_name_none(self, env_config, load):
        config = env_config("prod")
        config["llmplane:clusters"][2]["zones"] = []
        config["llmplane:clusters"][3]["zones"] = ["rack-7", "Basement"]
        load(config, "prod")

    def test_an_unknown_region_is_said_once(self, env_config, load):
        config = env_config("dev")
        config["llmplane:clusters"][0]["region"] = "us-east-9"
        assert [p.path for p in failure(load, config, "dev").problems] == ["clusters.aws-use1.region"]


# --- placement ----------------------------------------------------------------------------------------------------


def _mirror_70b_on_gcp(config: dict) -> None:
    """Give llama-3-70b gs:// mirrors, so placing it on GKE breaks only the rule under test."""
    for version, artifact in config["llmplane:models"]["llama-3-70b"]["catalog"].items():
        if "weightsOf" not in artifact:  # an engine canary serves its twin's weights, mirrors included
            artifact["mirrors"] = {"gcp": f"gs://llmplane-models-gcp/llama-3-70b/{version}/weights.tar"}


class TestPlacement(RuleCases):
    rule = rules.placement

    def test_model_clusters_exist(self, env_config, load):
        config = env_config("prod")
        config["llmplane:models"]["llama-3-70b"]["clusters"] = ["aws-use1", "aws-euw1"]
        problem = self.expect(load, config, "prod", "models.llama-3-70b.clusters", "cluster 'aws-euw1' does not exist",
                              "aws-euw1")
        assert problem.fix == "use one of: aws-use1, aws-usw2, gcp-usc1, onprem-dc1"

    def test_model_pool_exists_in_each_of_its_clusters(self, env_config, load):
        config = env_config("prod")
        _mirror_70b_on_gcp(config)
        config["llmplane:models"]["llama-3-70b"]["clusters"].append("gcp-usc1")
        problem = self.expect(load, config, "prod", "models.llama-3-70b.pool",
                              "cluster 'gcp-usc1' has no pool 'large'", "large")
        assert problem.fix == "add the pool to gcp-usc1 or use one of: inference"

    def test_a_model_without_clusters_goes_everywhere_so_its_pool_must_too(self, env_config, load):
        config = env_config("prod")
        _mirror_70b_on_gcp(config)
        del config["llmplane:models"]["llama-3-70b"]["clusters"]
        error = failure(load, config, "prod")
        assert [(p.path, p.message) for p in error.problems] == [
            ("models.llama-3-70b.pool", "cluster 'gcp-usc1' has no pool 'large'"),
            ("models.llama-3-70b.pool", "cluster 'onprem-dc1' has no pool 'large'"),
        ]


# --- traffic_weights ----------------------------------------------------------------------------------------------


class TestTrafficWeights(RuleCases):
    rule = rules.traffic_weights

    @pytest.mark.parametrize(("stable", "total"), [(80, 90), (100, 110), (0, 10)])
    def test_weights_must_sum_to_100(self, env_config, load, stable, total):
        config = env_config("prod")
        config["llmplane:models"]["llama-3-8b"]["versions"][0]["weight"] = stable
        problem = self.expect(load, config, "prod", "models.llama-3-8b.versions",
                              f"traffic weights sum to {total}, they must sum to 100", f"1.0.0={stable}, 1.1.0=10")
        assert problem.fix == "change the weights of the serving versions so they add up to 100"

    def test_weights_sum_to_90_renders_in_one_screen(self, env_config, load):
        config = env_config("prod")
        config["llmplane:models"]["llama-3-8b"]["versions"][0]["weight"] = 80
        assert failure(load, config, "prod").render() == (
            "environment 'prod' is invalid (1 problem); nothing was deployed or changed:\n"
            "  - models.llama-3-8b.versions: traffic weights sum to 90, they must sum to 100\n"
            "      value: 1.0.0=80, 1.1.0=10\n"
            "      fix:   change the weights of the serving versions so they add up to 100"
        )

    def test_shadow_takes_no_traffic(self, env_config, load):
        config = env_config("prod")
        [shadow] = [v for v in config["llmplane:models"]["llama-3-70b"]["versions"] if v["version"] == "1.1.0"]
        shadow["weight"] = 10
        problem = self.expect(load, config, "prod", "models.llama-3-70b.versions.1.1.0.weight",
                              "shadow version 1.1.0 has weight 10", "10")
        assert problem.fix.startswith("set weight 0")

    def test_some_version_must_serve(self, env_config, load):
        config = env_config("prod")
        for version in config["llmplane:models"]["llama-3-70b"]["versions"]:
            version.update(role="shadow", weight=0)
        config["llmplane:models"]["llama-3-70b"]["experiments"] = []  # a canary experiment needs a canary
        error = failure(load, config, "prod")
        weights = "1.0.0=0, 1.0.1=0, 1.1.0=0"
        assert [(p.path, p.message, p.value) for p in error.problems] == [
            ("models.llama-3-70b.versions", "traffic weights sum to 0, they must sum to 100", weights),
            ("models.llama-3-70b.versions", "every version is a shadow", weights),
        ]
        assert error.problems[1].fix == "mark at least one version stable"
        spec = PlatformSpec.model_validate(spec_data(config, "prod"))
        assert list(rules.traffic_weights(spec)) == error.problems


# --- catalog_registry ---------------------------------------------------------------------------------------------


class TestCatalogRegistry(RuleCases):
    rule = rules.catalog_registry

    def test_only_catalog_versions_are_deployed(self, env_config, load):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["versions"][0]["version"] = "1.2.0"
        problem = self.expect(load, config, "dev", "models.llama-3-8b.versions.1.2.0",
                              "version 1.2.0 is not in the catalog of llama-3-8b", "1.2.0")
        assert problem.fix == ("deploy a catalog version (1.0.0, 1.1.0) or publish 1.2.0 in "
                               "models.llama-3-8b.catalog with its uri and sha256")

    @pytest.mark.parametrize("uri", ["s3://llmplane-models/llama-3-8b/latest/weights.tar",
                                     "gs://llmplane-models/llama-3-8b/LATEST"])
    def test_catalog_uris_are_immutable(self, env_config, load, uri):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["catalog"]["1.1.0"]["uri"] = uri
        problem = self.expect(load, config, "dev", "models.llama-3-8b.catalog.1.1.0.uri",
                              "the URI names a moving 'latest' location", repr(uri))
        assert problem.fix == "point at a versioned, immutable object"

    def test_latest_in_a_bucket_name_is_fine(self, env_config, load):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["catalog"]["1.1.0"]["uri"] = "s3://latest/llama-3-8b/1.1.0/w.tar"
        load(config, "dev")


# --- fits_gpus ----------------------------------------------------------------------------------------------------


class TestFitsGpus(RuleCases):
    rule = rules.fits_gpus

    def test_tensor_parallel_size_fits_a_node(self, env_config, load):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["engine"]["tensorParallelSize"] = 2
        problem = self.expect(load, config, "dev", "models.llama-3-8b.engine.tensorParallelSize",
                              "tensor parallel size 2 exceeds the 1 GPUs per node of aws-use1/inference", "2",
                              alone=False)  # two GPUs per replica also overflow the pool: see the capacity rule
        assert problem.fix == "use at most 1, or a pool with more GPUs per node"

    @pytest.mark.parametrize(
        ("change", "message", "value"),
        [
            ({"dtype": "float32"}, "32.1 GB of weights per GPU leave no room for the KV cache on nvidia-l4 "
             "(21.6 GB usable, 10% kept for KV cache) in aws-use1", "8.03B float32, tp=1"),
            ({"engine": {"gpuMemoryUtilization": 0.7}}, "16.1 GB of weights per GPU leave no room for the KV cache "
             "on nvidia-l4 (16.8 GB usable, 10% kept for KV cache) in aws-use1", "8.03B bfloat16, tp=1"),
        ],
    )
    def test_weights_leave_room_for_the_kv_cache(self, env_config, load, change, message, value):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"].update(change)
        problem = self.expect(load, config, "dev", "models.llama-3-8b", message, value)
        assert problem.fix == "raise tensorParallelSize, quantize to a smaller dtype, or use a larger GPU"

    def test_a_70b_model_needs_tensor_parallelism(self, env_config, load):
        config = env_config("prod")
        config["llmplane:models"]["llama-3-70b"]["engine"]["tensorParallelSize"] = 1
        error = failure(load, config, "prod")
        assert [(p.path, p.message) for p in error.problems] == [
            ("models.llama-3-70b", f"141.2 GB of weights per GPU leave no room for the KV cache on nvidia-h100-80gb "
                                   f"(72.0 GB usable, 10% kept for KV cache) in {cluster}")
            for cluster in ("aws-use1", "aws-usw2")
        ]


# --- sequence_fits ------------------------------------------------------------------------------------------------

L4_ROOM = "nvidia-l4 keeps 5.5 GB for it after the weights"
"""0.9 x 24 GB less 8.03 B bf16 weights (16.06 GB): what an L4 leaves a Llama 3 8B replica's KV cache."""


class TestSequenceFits(RuleCases):
    rule = rules.sequence_fits

    def test_a_million_tokens_on_an_8b_model_on_l4_is_refused_twice(self, env_config, load):
        """Beyond Llama 3 8B's context window, and 131 GB of KV cache (128 KiB a token) where an L4 keeps 5.5."""
        config = env_config("prod")
        config["llmplane:models"]["llama-3-8b"]["engine"]["maxModelLen"] = 1_000_000
        error = failure(load, config, "prod")
        assert [(p.path, p.message, p.value, p.fix) for p in error.problems] == [
            ("models.llama-3-8b.engine.maxModelLen", "1000000 tokens exceed the model's context window of 8192 tokens "
             "(architecture.contextLength); vLLM refuses to start with it", "1000000",
             "use at most 8192, or serve a variant of the model with a longer context"),
            ("models.llama-3-8b.engine.maxModelLen", "one sequence of 1000000 tokens needs 131.1 GB of KV cache per "
             f"GPU; {L4_ROOM} (aws-use1, aws-usw2, gcp-usc1), and vLLM refuses to start without room for one",
             "1000000", "use at most 42256 tokens, raise tensorParallelSize or gpuMemoryUtilization, or use a GPU "
             "with more memory"),
        ]
        spec = PlatformSpec.model_validate(spec_data(config, "prod"))
        assert error.problems == list(rules.sequence_fits(spec))

    def test_max_model_len_stays_within_the_context_window(self, env_config, load):
        """Llama 3 70B's config.json says 8192 positions: vLLM refuses 16384 (`_get_and_verify_max_len`)."""
        config = env_config("prod")
        config["llmplane:models"]["llama-3-70b"]["engine"]["maxModelLen"] = 16384
        self.expect(load, config, "prod", "models.llama-3-70b.engine.maxModelLen", "16384 tokens exceed the model's "
                    "context window of 8192 tokens (architecture.contextLength); vLLM refuses to start with it",
                    "16384")

    @pytest.mark.parametrize(("length", "fits"), [(42256, True), (42257, False), (65536, False)])
    def test_one_sequence_fits_a_replicas_kv_cache(self, env_config, load, length, fits):
        """A long-context 8B (Llama 3.1's 131072 positions) on one L4: 42256 tokens of 128 KiB fit its 5.5 GB."""
        config = env_config("dev")
        model = config["llmplane:models"]["llama-3-8b"]
        model["architecture"]["contextLength"] = 131072
        model["engine"]["maxModelLen"] = length
        if fits:
            load(config, "dev")
            return
        need = -(-length // 16) * 16 * 131072 / 1e9
        self.expect(load, config, "dev", "models.llama-3-8b.engine.maxModelLen", f"one sequence of {length} tokens "
                    f"needs {need:.1f} GB of KV cache per GPU; {L4_ROOM} (aws-use1), and vLLM refuses to start "
                    "without room for one", str(length))

    def test_tensor_parallelism_splits_the_kv_heads_and_replicates_too_few(self, env_config, load):
        spec = load(env_config("prod"), "prod")
        model = spec.models["llama-3-70b"]
        assert model.kv_bytes_per_token() == 2 * 80 * (8 // 4) * 128 * 2  # tp 4: two of the eight KV heads a GPU
        wide = model.model_copy(update={"engine": model.engine.model_copy(update={"tensor_parallel_size": 16})})
        assert wide.kv_bytes_per_token() == 2 * 80 * 1 * 128 * 2  # tp 16 > 8 heads: one head a GPU, replicated

    def test_the_architecture_is_required(self, env_config, load):
        config = env_config("prod")
        config["llmplane:models"]["llama-3-8b"].pop("architecture")
        problem = expect(load, config, "prod", "models.llama-3-8b.architecture", "field required", "(missing)")
        assert problem.fix == "add `architecture`"


# --- engine_batch -------------------------------------------------------------------------------------------------


class TestEngineBatch(RuleCases):
    rule = rules.engine_batch

    def test_a_step_carries_a_token_of_every_batched_sequence(self, env_config, load):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["engine"].update({"maxNumSeqs": 64, "maxNumBatchedTokens": 32})
        problem = self.expect(load, config, "dev", "models.llama-3-8b.engine.maxNumBatchedTokens",
                              "32 tokens per step cannot carry the 64 sequences of maxNumSeqs", "32")
        assert problem.fix == "raise it to at least 64, or lower maxNumSeqs"

    def test_a_budget_of_exactly_max_num_seqs_is_enough(self, env_config, load):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["engine"].update({"maxNumSeqs": 64, "maxNumBatchedTokens": 64})
        assert load(config, "dev").models["llama-3-8b"].engine.max_num_batched_tokens == 64


# --- pool_capacity ------------------------------------------------------------------------------------------------


class TestPoolCapacity(RuleCases):
    rule = rules.pool_capacity

    def test_pool_has_gpus_for_every_replica_it_may_run(self, env_config, load):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["replicas"]["max"] = 4
        problem = self.expect(load, config, "dev", "clusters.aws-use1.pools.inference.nodes.max",
                              "3 GPUs at most, but the models on it may need 4", "llama-3-8b:1.1.0=4")
        assert problem.fix == "raise nodes.max to at least 4 or lower the replica maximums"

    def test_capacity_counts_every_version_and_tensor_parallel_gpus(self, env_config, load):
        config = env_config("prod")
        config["llmplane:models"]["llama-3-70b"]["replicas"]["max"] = 6
        error = failure(load, config, "prod")
        assert [(p.path, p.message, p.value) for p in error.problems] == [
            (f"clusters.{cluster}.pools.large.nodes.max", "24 GPUs at most, but the models on it may need 32",
             "llama-3-70b:1.0.0=24, llama-3-70b:1.0.1=4, llama-3-70b:1.1.0=4")
            for cluster in ("aws-use1", "aws-usw2")
        ]
        assert error.problems[0].fix == "raise nodes.max to at least 4 or lower the replica maximums"


# --- references ---------------------------------------------------------------------------------------------------


class TestReferences(RuleCases):
    rule = rules.references

    def test_failover_order_names_existing_clusters(self, env_config, load):
        config = env_config("staging")
        config["llmplane:routing"]["failoverOrder"] = ["aws-use1", "aws-usw3"]
        problem = self.expect(load, config, "staging", "routing.failoverOrder", "cluster 'aws-usw3' does not exist",
                              "aws-usw3")
        assert problem.fix == "use one of: aws-use1, aws-usw2"

    @pytest.mark.parametrize("target", ["aws-use1", "dc9"])
    def test_hybrid_link_ends_on_an_onprem_cluster(self, env_config, load, target):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["onpremCluster"] = target
        problem = self.expect(load, config, "prod", "hybrid.dc1.onpremCluster", f"'{target}' is not an on-prem cluster",
                              target)
        assert problem.fix == "name a cluster with cloud: onprem"

    @pytest.mark.parametrize("source", ["onprem-dc1", "aws-euw1"])
    def test_hybrid_link_starts_from_cloud_clusters(self, env_config, load, source):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["cloudClusters"].append(source)
        problem = self.expect(load, config, "prod", "hybrid.dc1.cloudClusters", f"'{source}' is not a cloud cluster",
                              source)
        assert problem.fix == "name an aws or gcp cluster"

    @pytest.mark.parametrize("asn", [0, 64511, 65535, 4199999999, 4294967295])
    def test_bgp_asn_is_private(self, env_config, load, asn):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["bgpAsn"] = asn
        problem = self.expect(load, config, "prod", "hybrid.dc1.bgpAsn", f"ASN {asn} is not private", str(asn))
        assert problem.fix == "use a private ASN: 64512-65534 or 4200000000-4294967294"

    @pytest.mark.parametrize("asn", [64512, 65534, 4200000000, 4294967294])
    def test_private_asn_ranges_are_inclusive(self, env_config, load, asn):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["bgpAsn"] = asn
        if asn == 64512:  # the AWS sides' own ASN: free on a link to GCP only
            config["llmplane:hybrid"][0]["cloudClusters"] = ["gcp-usc1"]
        load(config, "prod")

    @pytest.mark.parametrize(
        ("asn", "message"),
        [
            (64512, "ASN 64512 is the aws side's own ASN on this link (aws-use1, aws-usw2); BGP peers need different "
                    "ASNs"),
            (64513, "ASN 64513 is the gcp side's own ASN on this link (gcp-usc1); BGP peers need different ASNs"),
        ],
    )
    def test_the_site_asn_differs_from_every_cloud_side(self, env_config, load, asn, message):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["bgpAsn"] = asn
        problem = self.expect(load, config, "prod", "hybrid.dc1.bgpAsn", message, str(asn))
        assert problem.fix == "give the site another private ASN (not 64512 or 64513), e.g. 65010"

    def test_the_asns_compared_are_the_links_real_cloud_sides(self, env_config, load):
        """The components give every AWS side 64512 and every GCP side 64513 (facts.addressing.CLOUD_SIDE_ASN):
        a link to AWS only may use GCP's."""
        from llmplane.components.hybrid.link import AWS_SIDE_ASN, GCP_SIDE_ASN
        assert (AWS_SIDE_ASN, GCP_SIDE_ASN) == (64512, 64513)
        config = env_config("prod")
        config["llmplane:hybrid"][0].update(bgpAsn=GCP_SIDE_ASN, cloudClusters=["aws-use1", "aws-usw2"])
        load(config, "prod")

    def test_onprem_networks_do_not_overlap_cloud_networks(self, env_config, load):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["onpremCidrs"] = ["10.100.0.0/16", "10.20.128.0/17"]
        problem = self.expect(load, config, "prod", "hybrid.dc1.onpremCidrs",
                              "10.20.128.0/17 overlaps aws-usw2's network 10.20.0.0/16", "10.20.128.0/17")
        assert problem.fix == "renumber so on-prem and cloud networks do not overlap"


# --- tunnel_addresses ---------------------------------------------------------------------------------------------

TUNNELS = ["169.254.20.0/30", "169.254.20.4/30", "169.254.20.8/30", "169.254.20.12/30", "169.254.20.16/30",
           "169.254.20.20/30"]
"""Six usable tunnel inside CIDRs: two for each of prod's three cloud clusters linked to dc1."""


class TestTunnelAddresses(RuleCases):
    rule = rules.tunnel_addresses

    def test_given_tunnel_cidrs_are_usable(self, env_config, load):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["tunnelInsideCidrs"] = TUNNELS
        load(config, "prod")

    def test_two_tunnel_cidrs_per_cloud_cluster(self, env_config, load):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["tunnelInsideCidrs"] = TUNNELS[:2]
        problem = self.expect(load, config, "prod", "hybrid.dc1.tunnelInsideCidrs",
                              "2 CIDRs given for 3 cloud cluster(s)", "169.254.20.0/30, 169.254.20.4/30")
        assert problem.fix == "give 2 per cloud cluster, or none to have them allocated"

    @pytest.mark.parametrize(
        ("cidr", "reason"),
        [
            ("169.254.20.0/29", "must be a /30 inside 169.254.0.0/16"),
            ("10.0.0.0/30", "must be a /30 inside 169.254.0.0/16"),
            ("fe80::/30", "must be a /30 inside 169.254.0.0/16"),
            ("169.254.1.0/30", "is reserved by the cloud providers"),
            ("169.254.169.252/30", "is reserved by the cloud providers"),
            ("169.254.20.1/30", "is not a CIDR"),
            ("169.254.20.0/30\n", "is not a CIDR"),
            (" ", "is not a CIDR"),
        ],
    )
    def test_tunnel_cidrs_are_link_local_30s_no_cloud_reserves(self, env_config, load, cidr, reason):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["tunnelInsideCidrs"] = [cidr, *TUNNELS[1:]]
        shown = cidr if cidr.strip() and cidr.isprintable() else repr(cidr)  # odd text is quoted to stay on one line
        problem = self.expect(load, config, "prod", "hybrid.dc1.tunnelInsideCidrs", f"{shown} {reason}", shown)
        assert problem.fix == "use a /30 from 169.254.6.0 to 169.254.169.248, e.g. 169.254.20.0/30"

    def test_tunnel_cidrs_are_unique_across_links(self, env_config, load):
        config = env_config("prod")
        config["llmplane:hybrid"][0]["tunnelInsideCidrs"] = TUNNELS
        config["llmplane:hybrid"].append({
            "name": "dc1-backup", "onpremCluster": "onprem-dc1", "cloudClusters": ["aws-use1"],
            "publicIp": "203.0.113.11", "bgpAsn": 65011, "onpremCidrs": ["10.101.0.0/16"],
            "tunnelInsideCidrs": ["169.254.30.0/30", "169.254.20.8/30"],
        })
        problem = self.expect(load, config, "prod", "hybrid.dc1-backup.tunnelInsideCidrs",
                              "169.254.20.8/30 is already used by link 'dc1'", "169.254.20.8/30")
        assert problem.fix == "give every tunnel its own /30"


# --- slo_measurable -----------------------------------------------------------------------------------------------


class TestSloMeasurable(RuleCases):
    rule = rules.slo_measurable

    @pytest.mark.parametrize(("ttft", "nearest"), [(2.0, 2.5), (3, 2.5), (0.3, 0.25), (10000, 2560.0)])
    def test_ttft_objective_is_a_bucket_bound_of_the_ttft_histogram(self, env_config, load, ttft, nearest):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["slo"] = {"ttftSeconds": ttft}
        problem = self.expect(load, config, "dev", "models.llama-3-8b.slo.ttftSeconds",
                              f"{float(ttft)} s is not a bucket bound of vllm:time_to_first_token_seconds, so no "
                              "query can measure it", str(float(ttft)))
        assert problem.fix == f"use a bucket bound such as {nearest}"

    @pytest.mark.parametrize("ttft", [0.5, 1, 2.5, 5.0])
    def test_bucket_bounds_are_measurable(self, env_config, load, ttft):
        config = env_config("dev")
        config["llmplane:models"]["llama-3-8b"]["slo"] = {"ttftSeconds": ttft}
        assert load(config, "dev").models["llama-3-8b"].slo.ttft_seconds == ttft


# --- cluster_targets ----------------------------------------------------------------------------------------------


class TestReachableWeights(RuleCases):
    rule = rules.reachable_weights

    def test_gke_cannot_read_s3_weights(self, env_config, load):
        config = env_config("prod")
        del config["llmplane:models"]["llama-3-8b"]["catalog"]["1.1.0"]["mirrors"]["gcp"]
        uri = "s3://llmplane-models/llama-3-8b/1.1.0/weights.tar"
        problem = self.expect(load, config, "prod", "models.llama-3-8b.catalog.1.1.0.mirrors",
                              f"GCP cluster 'gcp-usc1' cannot read {uri} with its workload identity", repr(uri))
        assert problem.fix == "add mirrors: {gcp: gs://...} with the same archive, or an https:// uri"


class TestClusterTargets(RuleCases):
    rule = rules.cluster_targets

    def test_cloud_cluster_needs_a_network(self, env_config, load):
        config = env_config("dev")
        del config["llmplane:clusters"][0]["networkCidr"]
        problem = self.expect(load, config, "dev", "clusters.aws-use1.networkCidr",
                              "a cloud cluster needs a network CIDR", "(missing)")
        assert problem.fix == "add networkCidr, e.g. 10.10.0.0/16"

    def test_onprem_cluster_needs_a_kubeconfig_or_a_render_folder(self, env_config, load):
        config = env_config("local")
        del config["llmplane:clusters"][0]["kubeconfigFile"]
        problem = self.expect(load, config, "local", "clusters.local",
                              "an on-prem cluster needs a kubeconfig or a render folder", "(neither)")
        assert problem.fix == "add kubeconfigSecret (a secret config key), kubeconfigFile or renderDir"

    def test_a_cluster_has_one_target(self, env_config, load):
        config = env_config("local")
        config["llmplane:clusters"][0]["renderDir"] = "build/local"
        problem = self.expect(load, config, "local", "clusters.local", "a cluster has one target",
                              "kubeconfigFile, renderDir")
        assert problem.fix == "keep one of kubeconfigSecret, kubeconfigFile and renderDir"

    def test_only_onprem_clusters_take_a_kubeconfig_or_external_addons(self, env_config, load):
        config = env_config("dev")
        config["llmplane:clusters"][0]["kubeconfigFile"] = ".state/cluster/kubeconfig"
        config["llmplane:clusters"][0]["addons"] = "external"
        self.expect(load, config, "dev", "clusters.aws-use1.kubeconfigFile",
                    "only an on-prem cluster takes a kubeconfig or a render folder; llmplane creates cloud clusters "
                    "and reaches them itself", "aws", alone=False)
        self.expect(load, config, "dev", "clusters.aws-use1.addons",
                    "only an on-prem cluster can run its add-ons outside the stack", "external", alone=False)

    @pytest.mark.parametrize("cidr", ["10.40.0.0/28", "10.40.0.0/24", "10.40.0.0/23", "10.0.0.0/15"])
    def test_cloud_network_is_big_enough_for_a_subnet_pair_per_zone(self, env_config, load, cidr):
        """A /23 VPC would get /29 public subnets (prefix + 6), below AWS's /28 minimum."""
        config = env_config("dev")
        config["llmplane:clusters"][0]["networkCidr"] = cidr
        problem = self.expect(load, config, "dev", "clusters.aws-use1.networkCidr",
                              "a network on aws must be between /16 and /22 to hold a private and a public subnet per "
                              "zone (AWS subnets are /28 or larger)", cidr)
        assert problem.fix == "use a /16 to /22, e.g. 10.10.0.0/16"

    def test_an_aws_network_of_22_gives_28_public_subnets(self, env_config, load):
        from llmplane.components.clusters.aws import subnet_cidrs
        config = env_config("dev")
        config["llmplane:clusters"][0]["networkCidr"] = "10.40.0.0/22"
        load(config, "dev")
        assert {cidr.rsplit("/")[1] for cidr in subnet_cidrs("10.40.0.0/22", 3)[1]} == {"28"}

    @pytest.mark.parametrize(("cidr", "message", "fix"), [
        ("10.30.0.0/25", "a network on gcp must be between /16 and /24 to hold the nodes' subnet",
         "use a /16 to /24, e.g. 10.10.0.0/16"),
        ("172.16.0.0/20", "the network overlaps 172.16.0.0/28, the range GKE's private control plane peers into",
         "use a range outside 172.16.0.0/28, e.g. 10.30.0.0/16"),
    ])
    def test_a_gke_network_holds_the_nodes_clear_of_the_control_plane(self, env_config, load, cidr, message, fix):
        config = env_config("prod")
        config["llmplane:clusters"][2]["networkCidr"] = cidr
        assert self.expect(load, config, "prod", "clusters.gcp-usc1.networkCidr", message, cidr).fix == fix


# --- shape errors (pydantic, rewritten) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "path", "value"),
    [
        (lambda c: c["llmplane:clusters"][0].update(netwrkCidr=c["llmplane:clusters"][0].pop("networkCidr")),
         "clusters.aws-use1.netwrkCidr", "'10.10.0.0/16'"),
        (lambda c: c.update({"llmplane:region": "us-east-1"}), "region", "'us-east-1'"),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["versions"][1].update(rol="canary"),
         "models.llama-3-8b.versions.1.1.0.rol", "'canary'"),
    ],
    ids=["cluster-setting", "top-level-setting", "version-setting"],
)
def test_unknown_setting_is_named(env_config, load, mutate, path, value):
    config = env_config("prod")
    mutate(config)
    key = path.rsplit(".", 1)[-1]
    problem = expect(load, config, "prod", path, "unknown setting", value)
    assert problem.fix == f"remove `{key}` or correct its spelling"


@pytest.mark.parametrize(("key", "shown"), [(" ", "' '"), ("\x85", "'\\x85'"), ("a\nb", "'a\\nb'")])
def test_blank_or_unprintable_keys_are_quoted_in_paths(env_config, load, key, shown):
    config = env_config("prod")
    config["llmplane:clusters"][0][key] = 1
    problem = expect(load, config, "prod", f"clusters.aws-use1.{shown}", "unknown setting", "1")
    assert problem.fix == f"remove `{shown}` or correct its spelling"


def test_misspelt_required_setting_reports_both_the_unknown_and_the_missing_key(env_config, load):
    config = env_config("prod")
    config["llmplane:ownr"] = config.pop("llmplane:owner")
    error = failure(load, config, "prod")
    assert [(p.path, p.message, p.value, p.fix) for p in error.problems] == [
        ("owner", "field required", "(missing)", "add `owner`"),
        ("ownr", "unknown setting", "'platform-team'", "remove `ownr` or correct its spelling"),
    ]


@pytest.mark.parametrize(
    ("mutate", "path", "value", "allowed"),
    [
        (lambda c: c["llmplane:clusters"][0].update(cloud="azure"), "clusters.aws-use1.cloud", "'azure'",
         "'aws', 'gcp' or 'onprem'"),
        (lambda c: c["llmplane:clusters"][0]["pools"][0].update(capacityType="preemptible"),
         "clusters.aws-use1.pools.inference.capacityType", "'preemptible'", "'on-demand' or 'spot'"),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["versions"][1].update(role="blue"),
         "models.llama-3-8b.versions.1.1.0.role", "'blue'", "'stable', 'canary', 'ab' or 'shadow'"),
        (lambda c: c["llmplane:models"]["llama-3-8b"].update(dtype="bf16"), "models.llama-3-8b.dtype", "'bf16'",
         "'float32', 'bfloat16', 'float16', 'fp8', 'int8' or 'int4'"),
        (lambda c: c["llmplane:policy"].update(enforcement="strict"), "policy.enforcement", "'strict'",
         "'mandatory' or 'advisory'"),
    ],
    ids=["cloud", "capacity-type", "role", "dtype", "enforcement"],
)
def test_wrong_choice_lists_the_allowed_values(env_config, load, mutate, path, value, allowed):
    config = env_config("prod")
    mutate(config)
    problem = expect(load, config, "prod", path, f"input should be {allowed}", value)
    assert problem.fix == f"use one of {allowed}"


def test_unknown_gpu_type_lists_the_known_ones(env_config, load):
    config = env_config("dev")
    config["llmplane:clusters"][0]["pools"][0]["gpuType"] = "nvidia-t4"
    known = ("'nvidia-l4', 'nvidia-a10g', 'nvidia-l40s', 'nvidia-a100-40gb', 'nvidia-a100-80gb', "
             "'nvidia-h100-80gb' or 'nvidia-h200-141gb'")
    problem = expect(load, config, "dev", "clusters.aws-use1.pools.inference.gpuType", f"input should be {known}",
                     "'nvidia-t4'")
    assert problem.fix == f"use one of {known}"


NAME_HINT = "use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 40 characters"
SEMVER_HINT = "use a semantic version such as 1.2.0"


@pytest.mark.parametrize(
    ("mutate", "path", "value", "hint"),
    [
        (lambda c: c["llmplane:models"]["llama-3-8b"]["catalog"]["1.1.0"].update(sha256="ABC123"),
         "models.llama-3-8b.catalog.1.1.0.sha256", "'ABC123'",
         "use the 64 lowercase hex digits of the weights' sha256"),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["versions"][1].update(version="v1.1"),
         "models.llama-3-8b.versions.v1.1.version", "'v1.1'", SEMVER_HINT),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["catalog"].update({"1.2": {
            "uri": "s3://llmplane-models/llama-3-8b/1.2/weights.tar", "sha256": "0" * 64}}),
         "models.llama-3-8b.catalog.1.2", "'1.2'", SEMVER_HINT),
        (lambda c: c["llmplane:clusters"][0].update(name="AWS_use1"), "clusters.AWS_use1.name", "'AWS_use1'",
         NAME_HINT),
        (lambda c: c["llmplane:models"].update({"Llama-3-8B": c["llmplane:models"].pop("llama-3-8b")}),
         "models.Llama-3-8B", "'Llama-3-8B'", NAME_HINT),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["catalog"]["1.1.0"].update(uri="ftp://models/llama.tar"),
         "models.llama-3-8b.catalog.1.1.0.uri", "'ftp://models/llama.tar'",
         "use an immutable s3://, gs:// or https:// location"),
        (lambda c: c.update({"llmplane:images": {"vllm": {"0.24.0": "vllm/vllm-openai:latest"}}}),
         "images.vllm.0.24.0", "'vllm/vllm-openai:latest'",
         "reference the image by digest: registry/name:tag@sha256:<64 hex digits>"),
        (lambda c: c["llmplane:clusters"][0].update(networkCidr="10.10.0.0"), "clusters.aws-use1.networkCidr",
         "'10.10.0.0'", "use an IPv4 CIDR such as 10.20.0.0/16"),
    ],
    ids=["sha256", "semver-version", "semver-catalog-key", "cluster-name", "model-name", "uri", "image", "cidr"],
)
def test_pattern_mismatch_gives_a_human_hint(env_config, load, mutate, path, value, hint):
    config = env_config("prod")
    mutate(config)
    error = failure(load, config, "prod")
    problem = next(p for p in error.problems if p.path == path)
    assert problem.message.startswith("string should match pattern")
    assert (problem.value, problem.fix) == (value, hint)
    assert "[key]" not in error.render()


@pytest.mark.parametrize(
    ("cidr", "reason"),
    [
        ("10.10.0.1/16", "10.10.0.1/16 has host bits set"),
        ("300.10.0.0/16", "octet 300 (> 255) not permitted in '300.10.0.0'"),
        ("10.10.0.0/33", "'33' is not a valid netmask"),
    ],
)
def test_network_cidr_must_be_a_network_address(env_config, load, cidr, reason):
    config = env_config("prod")
    config["llmplane:clusters"][1]["networkCidr"] = cidr
    problem = expect(load, config, "prod", "clusters.aws-usw2.networkCidr", f"not an IPv4 network: {reason}",
                     repr(cidr))
    assert problem.fix == "use a network address with octets up to 255 and no host bits set, such as 10.20.0.0/16"


def test_onprem_cidrs_must_be_network_addresses(env_config, load):
    config = env_config("prod")
    config["llmplane:hybrid"][0]["onpremCidrs"] = ["10.100.0.0/16", "10.101.0.9/16"]
    expect(load, config, "prod", "hybrid.dc1.onpremCidrs.1", "not an IPv4 network: 10.101.0.9/16 has host bits set",
           "'10.101.0.9/16'")


@pytest.mark.parametrize(
    ("mutate", "path", "field"),
    [
        (lambda c: c["llmplane:models"]["llama-3-8b"].pop("pool"), "models.llama-3-8b.pool", "pool"),
        (lambda c: c.pop("llmplane:routing"), "routing", "routing"),
        (lambda c: c["llmplane:clusters"][0]["pools"][0].pop("gpuType"), "clusters.aws-use1.pools.inference.gpuType",
         "gpuType"),
    ],
    ids=["model-pool", "routing", "gpu-type"],
)
def test_missing_required_setting_says_add_it(env_config, load, mutate, path, field):
    config = env_config("prod")
    mutate(config)
    problem = expect(load, config, "prod", path, "field required", "(missing)")
    assert problem.fix == f"add `{field}`"


@pytest.mark.parametrize(
    ("mutate", "path", "message", "fix"),
    [
        (lambda c: c["llmplane:clusters"][0]["pools"][0].update(gpusPerNode=0),
         "clusters.aws-use1.pools.inference.gpusPerNode", "input should be greater than or equal to 1",
         "use a value of at least 1"),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["engine"].update(gpuMemoryUtilization=0.99),
         "models.llama-3-8b.engine.gpuMemoryUtilization", "input should be less than or equal to 0.98",
         "use a value of at most 0.98"),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["versions"][1].update(weight=-10),
         "models.llama-3-8b.versions.1.1.0.weight", "input should be greater than or equal to 0",
         "use a value of at least 0"),
        (lambda c: c["llmplane:models"]["llama-3-8b"].update(parametersBillions=0),
         "models.llama-3-8b.parametersBillions", "input should be greater than 0", "use a value above 0.0"),
        (lambda c: c["llmplane:models"]["llama-3-8b"].update(slo={"availability": 1}),
         "models.llama-3-8b.slo.availability", "input should be less than 1", "use a value below 1.0"),
        (lambda c: c["llmplane:models"]["llama-3-8b"].update(versions=[]), "models.llama-3-8b.versions",
         "list should have at least 1 item after validation, not 0", "add at least one entry"),
        (lambda c: c.update({"llmplane:owner": ""}), "owner", "string should have at least 1 character",
         "give a non-empty value"),
    ],
    ids=["gpus-per-node", "gpu-memory-utilization", "weight", "parameters", "availability", "versions", "owner"],
)
def test_out_of_range_value_says_the_limit(env_config, load, mutate, path, message, fix):
    config = env_config("prod")
    mutate(config)
    assert expect(load, config, "prod", path, message).fix == fix


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite(env_config, load, number):
    config = env_config("prod")
    config["llmplane:autoscaling"] = {"queuePerReplica": number}
    expect(load, config, "prod", "autoscaling.queuePerReplica", "input should be a finite number", str(number))


@pytest.mark.parametrize(
    ("mutate", "path", "message", "fix"),
    [
        (lambda c: c.update({"llmplane:clusters": "aws-use1"}), "clusters", "input should be a valid list",
         "give a valid clusters"),
        (lambda c: c.update({"llmplane:models": ["llama-3-8b"]}), "models", "input should be a valid dictionary",
         "give a valid models"),
        (lambda c: c["llmplane:clusters"].append(7), "clusters.4",
         "input should be a valid dictionary or instance of Cluster", "give a valid clusters entry"),
        (lambda c: c["llmplane:clusters"][0].update(name={"a": 1}), "clusters.0.name",
         "input should be a valid string", "give a valid name"),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["replicas"].update(max="eight"),
         "models.llama-3-8b.replicas.max", "input should be a valid integer", "give a valid max"),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["replicas"].update(max=True),
         "models.llama-3-8b.replicas.max", "input should be a valid integer", "give a valid max"),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["engine"].update(maxModelLen=2**63),
         "models.llama-3-8b.engine.maxModelLen", "input should be less than or equal to 1048576",
         "use a value of at most 1048576"),
        (lambda c: c["llmplane:models"]["llama-3-8b"]["performance"].update(prefillTokensPerSecond=1e12),
         "models.llama-3-8b.performance.prefillTokensPerSecond", "input should be less than or equal to 1000000",
         "use a value of at most 1000000.0"),
    ],
    ids=["list", "mapping", "list-item", "name-of-wrong-type", "integer", "boolean-is-not-an-integer",
         "max-model-len-beyond-any-model", "throughput-no-gpu-reaches"],
)
def test_wrong_type_names_the_expected_type(env_config, load, mutate, path, message, fix):
    config = env_config("prod")
    mutate(config)
    assert expect(load, config, "prod", path, message).fix == fix


@pytest.mark.parametrize("cost_center", [4711, "4711"])
def test_a_numeric_top_level_text_setting_is_taken_as_text(env_config, load, cost_center):
    """The engine passes top-level scalars as strings and the loader reads JSON back: 4711 and "4711" look alike."""
    config = env_config("dev")
    config["llmplane:costCenter"] = cost_center
    assert load(config, "dev").cost_center == "4711"


# --- every problem at once ----------------------------------------------------------------------------------------


def test_every_rule_problem_is_reported_not_just_the_first(env_config, load):
    config = env_config("prod")
    models = config["llmplane:models"]
    models["llama-3-8b"]["versions"][0]["weight"] = 80
    config["llmplane:clusters"][1]["region"] = "us-west-9"
    config["llmplane:hybrid"][0]["bgpAsn"] = 100
    config["llmplane:routing"]["failoverOrder"].append("aws-euw1")
    error = failure(load, config, "prod")
    assert [(p.path, p.message) for p in error.problems] == [
        ("clusters.aws-usw2.region", "'us-west-9' is not a region of aws"),
        ("models.llama-3-8b.versions", "traffic weights sum to 90, they must sum to 100"),
        ("routing.failoverOrder", "cluster 'aws-euw1' does not exist"),
        ("hybrid.dc1.bgpAsn", "ASN 100 is not private"),
    ]
    text = error.render()
    assert text.startswith("environment 'prod' is invalid (4 problems); nothing was deployed or changed:\n")
    assert all(f"  - {p.path}: {p.message}\n" in text for p in error.problems)


def test_every_shape_problem_is_reported_not_just_the_first(env_config, load):
    config = env_config("prod")
    config["llmplane:clusters"][0]["cloud"] = "azure"
    config["llmplane:models"]["llama-3-70b"]["catalog"]["1.0.0"]["sha256"] = "nope"
    config["llmplane:observability"]["metricsRetentionDays"] = 0
    del config["llmplane:policy"]["enforcement"]
    error = failure(load, config, "prod")
    assert [p.path for p in error.problems] == [
        "clusters.aws-use1.cloud",
        "models.llama-3-70b.catalog.1.0.0.sha256",
        "observability.metricsRetentionDays",
        "policy.enforcement",
    ]
    assert error.render().startswith("environment 'prod' is invalid (4 problems)")


def test_secrets_never_reach_the_spec_or_its_errors(env_config, load):
    config = env_config("prod")
    config["llmplane:secrets"] = {"vllmApiKey": "sk-live-0123456789", "onpremKubeconfig": "apiVersion: v1"}
    config["llmplane:models"]["llama-3-8b"]["versions"][0]["weight"] = 80
    error = failure(load, config, "prod")
    assert "sk-live-0123456789" not in error.render()
    del config["llmplane:secrets"]["vllmApiKey"]
    config["llmplane:models"]["llama-3-8b"]["versions"][0]["weight"] = 90
    assert "secrets" not in load(config, "prod").model_dump()


def test_spec_error_hides_pydantic_internals(env_config, load):
    """SpecError is raised `from None`: a caller printing it shows the report, not pydantic's own error."""
    config = env_config("prod")
    config["llmplane:clusters"][0]["cloud"] = "azure"
    error = failure(load, config, "prod")
    assert error.__cause__ is None and error.__suppress_context__
    assert "pydantic" not in str(error) and "errors.pydantic.dev" not in str(error)


# --- cold start: streamed weights, node caches, warm headroom, scale from zero --------------------------------------


def _streamed(config: dict) -> dict:
    """The 8B model of `config`, by name."""
    return config["llmplane:models"]["llama-3-8b"]


class TestStreamedWeights(RuleCases):
    rule = rules.streamed_weights

    def test_a_streamed_version_lists_its_files(self, env_config, load):
        config = env_config("dev")
        del _streamed(config)["catalog"]["1.1.0"]["files"]
        problem = self.expect(load, config, "dev", "models.llama-3-8b.catalog.1.1.0.files",
                              "version 1.1.0 is streamed (weights.loadFormat: runai_streamer) but lists no per-file "
                              "sha256", "(missing)")
        assert "model-00001-of-00004.safetensors" in problem.fix and "loadFormat: download" in problem.fix

    def test_a_downloaded_version_needs_no_files(self, env_config, load):
        config = env_config("dev")
        model = _streamed(config)
        del model["catalog"]["1.1.0"]["files"]
        model["weights"] = {"loadFormat": "download"}
        assert load(config, "dev").models["llama-3-8b"].weights.load_format == "download"

    def test_the_streamer_needs_safetensors(self, env_config, load):
        config = env_config("dev")
        files = _streamed(config)["catalog"]["1.1.0"]["files"]
        for name in [n for n in files if n.endswith(".safetensors")]:
            del files[name]
        self.expect(load, config, "dev", "models.llama-3-8b.catalog.1.1.0.files",
                    "no .safetensors file is listed; the model streamer loads only safetensors")

    def test_streamed_weights_are_verified_into_a_node_cache(self, env_config, load):
        config = env_config("dev")
        _streamed(config)["weights"]["nodeCache"] = False
        problem = self.expect(load, config, "dev", "models.llama-3-8b.weights.nodeCache",
                              "streamed weights are checked against their sha256 only as the prefetcher writes them "
                              "into the node cache", "false", alone=False)
        assert "loadFormat: download" in problem.fix

    def test_the_pool_of_a_streamed_model_has_a_node_cache(self, env_config, load):
        config = env_config("dev")
        del config["llmplane:clusters"][0]["pools"][0]["nodeCache"]
        problem = self.expect(load, config, "dev", "clusters.aws-use1.pools.inference.nodeCache",
                              "model 'llama-3-8b' streams its weights, which are verified into the pool's node "
                              "cache, but the pool has none", "(missing)", alone=False)
        assert problem.fix == ("add nodeCache: {sizeGi: 15, medium: nvme}, or use loadFormat: download for "
                               "llama-3-8b")


class TestNodeCaches(RuleCases):
    rule = rules.node_caches

    @pytest.mark.parametrize("cluster, medium, expected", [(0, "local-ssd", "nvme"), (2, "nvme", "local-ssd"),
                                                           (3, "nvme", "host-path")])
    def test_the_medium_is_the_clouds(self, env_config, load, cluster, medium, expected):
        config = env_config("prod")
        entry = config["llmplane:clusters"][cluster]
        entry["pools"][0]["nodeCache"]["medium"] = medium
        problem = self.expect(load, config, "prod", f"clusters.{entry['name']}.pools.{entry['pools'][0]['name']}"
                              ".nodeCache.medium", f"a cache on {entry['cloud']} nodes is on {expected}, not {medium}",
                              medium)
        assert problem.fix == f"use medium: {expected}"

    def test_only_a_host_path_cache_takes_a_path(self, env_config, load):
        config = env_config("dev")
        config["llmplane:clusters"][0]["pools"][0]["nodeCache"]["path"] = "/mnt/models"
        self.expect(load, config, "dev", "clusters.aws-use1.pools.inference.nodeCache.path",
                    "only a host-path cache takes a path; nvme is mounted by the node's set-up", "/mnt/models")

    def test_an_onprem_cache_may_name_its_folder(self, env_config, load):
        config = env_config("prod")
        config["llmplane:clusters"][3]["pools"][0]["nodeCache"]["path"] = "/data/llmplane"
        pool = load(config, "prod").cluster("onprem-dc1").pools[0]
        assert pool.node_cache.host_path == "/data/llmplane"

    def test_an_nvme_cache_fits_the_instance_store(self, env_config, load):
        config = env_config("dev")
        config["llmplane:clusters"][0]["pools"][0]["nodeCache"]["sizeGi"] = 300
        problem = self.expect(load, config, "dev", "clusters.aws-use1.pools.inference.nodeCache.sizeGi",
                              "300 GiB do not fit the 233 GiB of NVMe instance store of g6.xlarge", "300")
        assert problem.fix == "use at most 232 GiB, or a machine with more instance store"

    def test_the_cache_holds_every_version_deployed_through_it(self, env_config, load):
        config = env_config("prod")
        for cluster in config["llmplane:clusters"][:2]:
            cluster["pools"][0]["nodeCache"]["sizeGi"] = 20
        problem = self.expect(load, config, "prod", "clusters.aws-use1.pools.inference.nodeCache.sizeGi",
                              "20 GiB cannot hold the 29.9 GiB of weights deployed through the cache",
                              "llama-3-8b:1.0.0=15.0 GiB, llama-3-8b:1.1.0=15.0 GiB", alone=False)
        assert problem.fix == "raise sizeGi to at least 30"

    def test_a_compile_cache_needs_a_node_cache(self, env_config, load):
        config = env_config("staging")
        model = _streamed(config)
        model["weights"] = {"loadFormat": "download"}
        del config["llmplane:clusters"][1]["pools"][0]["nodeCache"]
        problem = self.expect(load, config, "staging", "models.llama-3-8b.compileCache",
                              "the compile cache is kept on the node cache, and aws-usw2/inference has none", "true")
        assert problem.fix == "add a nodeCache to aws-usw2/inference, or set compileCache: false"


class TestWarmHeadroom(RuleCases):
    rule = rules.warm_headroom

    def test_slots_fit_beside_the_replica_maximums(self, env_config, load):
        config = env_config("prod")
        config["llmplane:clusters"][0]["pools"][0]["warmHeadroom"] = {
            "slots": 2, "schedules": [{"cron": "0 8 * * 1-5", "durationMinutes": 240, "slots": 1}]}
        problem = self.expect(load, config, "prod", "clusters.aws-use1.pools.inference.warmHeadroom.slots",
                              "2 warm slots and 1 scheduled ones of 1 GPU(s) each, next to the models' 16 GPUs at "
                              "their replica maximums, need 19 GPUs; the pool has 18",
                              "slots=2, scheduled=1, nodes.max=18")
        assert problem.fix == "raise nodes.max to at least 19 or lower the slots"

    def test_slots_on_a_pool_without_models_warm_nothing(self, env_config, load):
        config = env_config("prod")
        config["llmplane:clusters"][2]["pools"].append({"name": "spare", "gpuType": "nvidia-l4", "gpusPerNode": 1,
                                                       "nodes": {"min": 0, "max": 2}, "warmHeadroom": {"slots": 1}})
        self.expect(load, config, "prod", "clusters.gcp-usc1.pools.spare.warmHeadroom",
                    "no model runs on the pool, so its slots would warm nothing", "slots=1")


class TestScaleFromZero(RuleCases):
    rule = rules.scale_from_zero

    def test_the_first_held_request_wakes_a_version_at_zero(self, env_config, load):
        config = env_config("dev")
        config["llmplane:autoscaling"]["activationQueue"] = 1
        problem = self.expect(load, config, "dev", "autoscaling.activationQueue",
                              "a version at zero replicas wakes only when more than 1 requests are held for it, so a "
                              "lone request waits for another", "1 (scaling to zero: llama-3-8b:1.1.0)")
        assert problem.fix == "set activationQueue: 0 so the first held request wakes the version"

    def test_no_version_at_zero_needs_no_activation_at_zero(self, env_config, load):
        config = env_config("local")
        config["llmplane:autoscaling"]["activationQueue"] = 3
        assert load(config, "local").autoscaling.activation_queue == 3


@pytest.mark.parametrize("cron, message", [
    ("0 8 * *", "a cron schedule has 5 fields (minute hour day month weekday), not 4"),
    ("60 8 * * *", "the minute 60 is outside 0-59"),
    ("0 8-6 * * *", "the hour range 8-6 runs backwards"),
    ("0 8 * * mon", "the day of week field 'mon' is not *, a number or a range"),
    ("*/0 8 * * *", "the minute step '0' is not a positive number"),
])
def test_a_headroom_schedule_is_a_five_field_cron(env_config, load, cron, message):
    config = env_config("prod")
    config["llmplane:clusters"][0]["pools"][0]["warmHeadroom"] = {
        "slots": 1, "schedules": [{"cron": cron, "durationMinutes": 60, "slots": 1}]}
    problem = expect(load, config, "prod", "clusters.aws-use1.pools.inference.warmHeadroom.schedules.0.cron",
                     message, repr(cron))
    assert problem.fix == "use five numeric fields (minute hour day month weekday), e.g. `0 8 * * 1-5`"


@pytest.mark.parametrize("minutes, message", [(0, "input should be greater than or equal to 1"),
                                              (1441, "input should be less than or equal to 1440")])
def test_a_headroom_window_lasts_a_minute_to_a_day(env_config, load, minutes, message):
    config = env_config("prod")
    config["llmplane:clusters"][0]["pools"][0]["warmHeadroom"] = {
        "slots": 0, "schedules": [{"cron": "30 7 * * 1-5", "durationMinutes": minutes, "slots": 1}]}
    expect(load, config, "prod", "clusters.aws-use1.pools.inference.warmHeadroom.schedules.0.durationMinutes",
           message, str(minutes))


@pytest.mark.parametrize("name", ["../escape.safetensors", "/etc/passwd", "a/./b.json"])
def test_catalog_file_names_stay_inside_the_version_folder(env_config, load, name):
    config = env_config("dev")
    _streamed(config)["catalog"]["1.1.0"]["files"][name] = "0" * 64
    error = failure(load, config, "dev")
    assert [p.path for p in error.problems] == [f"models.llama-3-8b.catalog.1.1.0.files.{name}"]
    assert "relative to the version's folder" in error.problems[0].fix


def test_a_streamed_version_is_read_from_the_folder_of_its_archive(env_config, load):
    spec = load(env_config("prod"), "prod")
    artifact = spec.models["llama-3-8b"].catalog["1.0.0"]
    assert artifact.folder_for("aws") == "s3://llmplane-models/llama-3-8b/1.0.0/"
    assert artifact.folder_for("gcp") == "gs://llmplane-models-gcp/llama-3-8b/1.0.0/"
    assert artifact.folder_for("onprem") == "https://models.dc1.internal/llama-3-8b/1.0.0/"


def test_a_gke_node_cache_fits_the_local_ssds_its_machine_type_comes_with(env_config, load):
    """prod's GKE pool runs g2-standard-8, which has exactly one 375 GiB local SSD (cold start, issue 26)."""
    config = env_config("prod")
    gke = next(c for c in config["llmplane:clusters"] if c["cloud"] == "gcp")
    gke["pools"][0]["nodeCache"]["sizeGi"] = 400
    problem = expect(load, config, "prod", "clusters.gcp-usc1.pools.inference.nodeCache.sizeGi",
                     "g2-standard-8 comes with exactly 1 local SSD of 375 GiB; 400 GiB do not fit", "400")
    assert problem.fix.startswith("use at most 375 GiB")
