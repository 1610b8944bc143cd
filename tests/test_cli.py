"""`llmplane validate|plan`: exit codes, what reaches stdout and stderr, and no secret in a plan.

The CLI runs in-process through `stacks.cli.main(argv)` (the offline plan's mock runtime is set afresh by every
plan); one test runs the console entry point in a subprocess to see exactly what a user's terminal gets.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from llmplane.stacks.cli import main, parser
from llmplane.stacks.environments import ENVIRONMENTS, PROJECT_ROOT, known_environments

WEIGHTS_90 = "models.llama-3-8b.versions: traffic weights sum to 90, they must sum to 100"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `llmplane <argv>`."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_environment(folder: Path, name: str, edit=None) -> Path:
    """A copy of a shipped environment file in `folder`, optionally edited as text (as a person would)."""
    text = (ENVIRONMENTS / f"Pulumi.{name}.yaml").read_text()
    if edit:
        text = edit(text)
    path = folder / f"Pulumi.{name}.yaml"
    path.write_text(text)
    return path


def weights_90(text: str) -> str:
    """The first model's 90 % stable version made 80 %: its weights then sum to 90."""
    assert text.count("weight: 90\n") == 2, "llama-3-8b's and llama-3-70b's stable versions"
    return text.replace("weight: 90\n", "weight: 80\n", 1)


# --- validate -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", known_environments())
def test_validate_accepts_every_shipped_environment(capsys, environment):
    code, out, err = run(capsys, "validate", environment)
    assert code == 0, err
    assert out.startswith(f"environment '{environment}' is valid: ")
    assert err == ""


def test_environments_folder_defaults_to_the_projects(tmp_path):
    assert parser().parse_args(["validate", "prod"]).environments == PROJECT_ROOT / "environments"
    assert parser().parse_args(["plan", "prod", "--environments", str(tmp_path)]).environments == tmp_path


def test_validate_reads_another_environments_folder(capsys, tmp_path):
    write_environment(tmp_path, "prod")
    code, out, _ = run(capsys, "validate", "prod", "--environments", str(tmp_path))
    assert code == 0
    assert "environment 'prod' is valid" in out


def test_weights_summing_to_90_exit_2_naming_the_field(capsys, tmp_path):
    write_environment(tmp_path, "prod", weights_90)
    code, out, err = run(capsys, "validate", "prod", "--environments", str(tmp_path))
    assert code == 2
    assert out == ""
    assert err.startswith("environment 'prod' is invalid (1 problem); nothing was deployed or changed:\n")
    assert f"  - {WEIGHTS_90}\n      value: 1.0.0=80, 1.1.0=10\n      fix:   " in err
    assert "Traceback" not in err


def _edit(old: str, new: str, count: int = 1):
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, count)
    return edit


@pytest.mark.parametrize(
    ("edit", "lines"),
    [
        (_edit("bgpAsn: 65010", "bgpAsn: 64512"),
         ["  - hybrid.dc1.bgpAsn: ASN 64512 is the aws side's own ASN on this link (aws-use1, aws-usw2); BGP peers "
          "need different ASNs\n      value: 64512\n      fix:   give the site another private ASN (not 64512 or "
          "64513), e.g. 65010"]),
        (_edit("zones: [us-east-1a, us-east-1b, us-east-1c]", "zones: [us-east-1a, us-west-2a, us-east-1c]"),
         ["  - clusters.aws-use1.zones: zone us-west-2a is in region us-west-2, not in the cluster's region "
          "us-east-1\n      value: us-west-2a\n      fix:   use zones of us-east-1, e.g. us-east-1a, us-east-1b, "
          "us-east-1c"]),
        (_edit("zones: [us-central1-a, us-central1-b, us-central1-c]", "zones: [europe-west4-a, us-central1-b]"),
         ["  - clusters.gcp-usc1.zones: zone europe-west4-a is in region europe-west4, not in the cluster's region "
          "us-central1\n      value: europe-west4-a\n      fix:   use zones of us-central1"]),
        (_edit("maxModelLen: 8192\n        maxNumSeqs: 128", "maxModelLen: 1000000\n        maxNumSeqs: 128"),
         ["  - models.llama-3-8b.engine.maxModelLen: 1000000 tokens exceed the model's context window of 8192 tokens "
          "(architecture.contextLength); vLLM refuses to start with it\n      value: 1000000\n      fix:   use at "
          "most 8192",
          "  - models.llama-3-8b.engine.maxModelLen: one sequence of 1000000 tokens needs 131.1 GB of KV cache per "
          "GPU; nvidia-l4 keeps 5.5 GB for it after the weights (aws-use1, aws-usw2, gcp-usc1), and vLLM refuses to "
          "start without room for one\n      value: 1000000\n      fix:   use at most 42256 tokens"]),
    ],
    ids=["onprem-asn-equals-aws-side", "aws-zone-of-another-region", "gcp-zone-of-another-region",
         "8b-on-l4-with-a-million-tokens"],
)
def test_a_broken_constraint_exits_2_naming_field_value_and_fix(capsys, tmp_path, edit, lines):
    write_environment(tmp_path, "prod", edit)
    code, out, err = run(capsys, "validate", "prod", "--environments", str(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith(f"environment 'prod' is invalid ({len(lines)} problem{'s' * (len(lines) > 1)}); nothing "
                          "was deployed or changed:\n")
    for line in lines:
        assert line in err, err
    assert "Traceback" not in err


def test_every_problem_in_a_file_is_printed(capsys, tmp_path):
    def break_three_things(text: str) -> str:
        text = weights_90(text).replace("bgpAsn: 65010", "bgpAsn: 100").replace("cloud: gcp", "cloud: azure")
        return text

    write_environment(tmp_path, "prod", break_three_things)
    code, _, err = run(capsys, "validate", "prod", "--environments", str(tmp_path))
    assert code == 2
    # a shape error (the cloud) stops the cross-field rules; fixing it reveals the other two
    assert "(1 problem)" in err and "clusters.gcp-usc1.cloud: input should be 'aws', 'gcp' or 'onprem'" in err
    write_environment(tmp_path, "prod", lambda text: weights_90(text).replace("bgpAsn: 65010", "bgpAsn: 100"))
    code, _, err = run(capsys, "validate", "prod", "--environments", str(tmp_path))
    assert code == 2
    assert "(2 problems)" in err and WEIGHTS_90 in err and "hybrid.dc1.bgpAsn: ASN 100 is not private" in err


def test_invalid_environment_in_a_real_process_prints_no_traceback(tmp_path):
    write_environment(tmp_path, "prod", weights_90)
    result = subprocess.run(
        [sys.executable, "-m", "llmplane.stacks.cli", "validate", "prod", "--environments", str(tmp_path)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert WEIGHTS_90 in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.splitlines()) < 25, "one screen"


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_unknown_environment_exits_2_listing_the_known_ones(capsys, command):
    code, out, err = run(capsys, command, "qa")
    assert code == 2
    assert out == ""
    assert err.startswith("llmplane: no environment 'qa': ")
    assert err.rstrip().endswith("(known: dev, local, prod, staging)")
    assert "Traceback" not in err


def test_unknown_environment_in_another_folder_lists_that_folders(capsys, tmp_path):
    write_environment(tmp_path, "dev")
    code, _, err = run(capsys, "validate", "prod", "--environments", str(tmp_path))
    assert code == 2
    assert err.rstrip().endswith("(known: dev)")


def test_malformed_yaml_exits_2_without_traceback(capsys, tmp_path):
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  llmplane:owner: [unclosed\n")
    code, out, err = run(capsys, "validate", "prod", "--environments", str(tmp_path))
    assert code == 2
    assert out == ""
    assert err.startswith(f"llmplane: {tmp_path / 'Pulumi.prod.yaml'}: YAML syntax error at line 3")
    assert "Traceback" not in err


# --- plan ---------------------------------------------------------------------------------------------------------


def test_plan_of_an_invalid_environment_exits_2_before_any_resource(capsys, tmp_path):
    write_environment(tmp_path, "prod", weights_90)
    code, out, err = run(capsys, "plan", "prod", "--json", "--environments", str(tmp_path))
    assert code == 2
    assert out == ""
    assert WEIGHTS_90 in err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def prod_plan_output() -> str:
    """stdout of `llmplane plan prod --json`, run once for the module (capsys is per test, so redirect here)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["plan", "prod", "--json"])
    assert code == 0, f"the shipped prod must plan cleanly (policy exit code is 3):\n{err.getvalue()}"
    return out.getvalue()


def test_plan_prod_json_is_one_object_of_environment_resources_and_policies(prod_plan_output):
    plan = json.loads(prod_plan_output)
    assert isinstance(plan, dict)
    assert list(plan) == ["environment", "resources", "policies"]
    assert plan["environment"] == "prod"
    assert isinstance(plan["policies"], list)
    for verdict in plan["policies"]:
        assert {"policy", "enforcement", "urn", "message"} <= set(verdict)
    for resource in plan["resources"]:
        assert set(resource) == {"urn", "type", "name", "parent", "inputs"}
        assert resource["urn"].endswith(f"::{resource['name']}")


def test_plan_prod_lists_aws_gcp_and_kubernetes_resources(prod_plan_output):
    types = {resource["type"] for resource in json.loads(prod_plan_output)["resources"]}
    providers = {type_.split(":", 1)[0] for type_ in types}
    assert {"aws", "gcp", "kubernetes"} <= providers
    assert {"aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster", "kubernetes:apps/v1:Deployment"} <= types


def test_plan_prod_shows_placeholders_where_secrets_are(prod_plan_output):
    plan = json.loads(prod_plan_output)
    secrets = [r for r in plan["resources"] if r["type"] == "kubernetes:core/v1:Secret"]
    assert secrets, "the vLLM API key is a Kubernetes Secret in every cluster"
    assert all(r["inputs"].get("stringData") == "[secret]" for r in secrets)
    onprem = [r for r in plan["resources"] if r["type"] == "pulumi:providers:kubernetes" and "onprem" in r["name"]]
    assert onprem and all(r["inputs"]["kubeconfig"] == "[secret]" for r in onprem)


@pytest.mark.parametrize("form", ["plain", "secure"])
def test_plan_never_prints_a_secret_value(capsys, tmp_path, prod_plan_output, form):
    """Secrets set in the file as `secure:` ciphertext come out only as the placeholder; in clear they are refused
    (outside local), and neither way is a value printed."""
    values = {
        "vllmApiKey": "sk-plain-text-api-key-4f9d2c",
        "onpremKubeconfig": "apiVersion: v1\nusers: [{name: dc1, user: {token: kube-token-77a1e0}}]",
    }
    document = yaml.safe_load((ENVIRONMENTS / "Pulumi.prod.yaml").read_text())
    document["config"]["llmplane:secrets"] = values if form == "plain" else {
        key: {"secure": f"v1:{value}"} for key, value in values.items()}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    code, out, err = run(capsys, "plan", "prod", "--json", "--environments", str(tmp_path))
    for secret in (*values.values(), "sk-plain-text-api-key", "kube-token-77a1e0"):
        assert secret not in out and secret not in err
    if form == "plain":  # refused outside local, naming the setting, never its value
        assert code == 2 and "llmplane:secrets.vllmApiKey is written in plain text" in err
        return
    assert code == 0, err
    assert out.count('"[secret]"') == prod_plan_output.count('"[secret]"') > 0


def test_an_environment_whose_config_is_not_a_mapping_exits_2(tmp_path, capsys):
    (tmp_path / "Pulumi.broken.yaml").write_text("config:\n  - just\n  - a list\n")
    assert main(["validate", "broken", "--environments", str(tmp_path)]) == 2
    assert "`config:` must be a mapping" in capsys.readouterr().err


def test_policy_config_out_refuses_a_missing_folder_and_creates_none(capsys, tmp_path):
    target = tmp_path / "nested" / "policy.json"
    code, out, err = run(capsys, "policy-config", "local", "--out", str(target))
    assert code == 4
    assert err == f"llmplane: {target}: the folder {target.parent} does not exist; create it first or write elsewhere\n"
    assert not target.parent.exists()


@pytest.mark.parametrize("base", ["--output={victim}", "-x", "no-such-branch", "HEAD:README.md"])
def test_diff_base_must_name_a_commit_and_is_never_an_option(capsys, tmp_path, base):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    code, out, err = run(capsys, "diff", "local", f"--base={base.format(victim=victim)}")
    assert code == 1
    assert "is not a git ref" in err or "does not name a commit" in err, err
    assert victim.read_text() == "keep me"


def _with_plaintext_secret(tmp_path: Path, environment: str) -> None:
    document = yaml.safe_load((ENVIRONMENTS / f"Pulumi.{environment}.yaml").read_text())
    document["config"].setdefault("llmplane:secrets", {})["hfToken"] = "hf_plaintext_value"
    (tmp_path / f"Pulumi.{environment}.yaml").write_text(yaml.safe_dump(document))


def test_a_plaintext_secret_is_refused_outside_local(capsys, tmp_path):
    _with_plaintext_secret(tmp_path, "prod")
    code, out, err = run(capsys, "validate", "prod", "--environments", str(tmp_path))
    assert code == 2
    assert ("llmplane:secrets.hfToken is written in plain text in Pulumi.prod.yaml; store it encrypted: "
            "pulumi config set --secret --path 'llmplane:secrets.hfToken' <value>") in err
    assert "hf_plaintext_value" not in out + err


def test_a_plaintext_secret_in_local_is_a_warning(capsys, tmp_path):
    _with_plaintext_secret(tmp_path, "local")
    code, out, err = run(capsys, "validate", "local", "--environments", str(tmp_path))
    assert code == 0
    assert err.startswith("llmplane: warning: llmplane:secrets.hfToken is written in plain text")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("aws:region", "us-east-9", "aws:region: not an AWS region"),
    ("gcp:project", "My Project", "gcp:project: not a GCP project ID"),
])
def test_provider_settings_are_validated(capsys, tmp_path, key, value, message):
    text = (ENVIRONMENTS / "Pulumi.prod.yaml").read_text()
    text = re.sub(rf"^  {key}: .*$", f"  {key}: {value}", text, count=1, flags=re.M)
    (tmp_path / "Pulumi.prod.yaml").write_text(text)
    code, out, err = run(capsys, "validate", "prod", "--environments", str(tmp_path))
    assert code == 2 and message in err, err


def test_a_plan_that_registers_one_urn_twice_is_refused():
    import pulumi
    from llmplane.stacks.environments import read_stack_config
    from llmplane.stacks.plan import DuplicateUrnError, run_plan

    def twice() -> None:
        pulumi.CustomResource("test:index:Thing", "same", {})
        pulumi.CustomResource("test:index:Thing", "same", {})

    with pytest.raises(DuplicateUrnError, match="more than once"):
        run_plan(read_stack_config("local"), program=twice)


def test_validate_warns_of_a_metric_a_deployed_release_hides_and_still_passes(capsys, monkeypatch):
    """vLLM 0.14.0 exports vllm:time_per_output_token_seconds only behind --show-hidden-metrics-for-version: were
    our dashboards to read it, validate says so, naming the release and the versions, and the exit code stays 0."""
    from llmplane.monitoring import vllm_metrics
    from llmplane.spec import engine_rules

    hidden = vllm_metrics.Metric("vllm:time_per_output_token_seconds", vllm_metrics.Kind.HISTOGRAM,
                                 vllm_metrics.VLLM_LABELS, "deprecated")
    monkeypatch.setattr(engine_rules, "VLLM", (*vllm_metrics.VLLM, hidden))
    code, out, err = run(capsys, "validate", "dev")
    assert code == 0 and out.startswith("environment 'dev' is valid")
    assert "llmplane: warning: models: vLLM 0.14.0 hides vllm:time_per_output_token_seconds" in err
    assert "llama-3-8b:1.1.0 will show no vllm:time_per_output_token_seconds series" in err
