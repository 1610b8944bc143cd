"""Alert rules: generated from parameters, checked and unit-tested by promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from llmplane.monitoring import rules

MONITORING = Path(rules.__file__).parent
PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:
    raise RuntimeError("promtool is missing: run `make test-setup` (apt-get install prometheus)")
BURN_ALERTS = {"VllmTtftBudgetBurnFast", "VllmTtftBudgetBurnSlow", "VllmErrorBudgetBurnFast", "VllmErrorBudgetBurnSlow"}
# The SLOs of monitoring/tests/slo_per_model.yaml; llama-3-8b keeps the default.
PER_MODEL_SLOS = rules.AlertParams(slos={
    "llama-3-70b": rules.Slo(ttft_objective=0.95, availability_objective=0.99),
    "mistral-7b": rules.Slo(ttft_seconds=1.0),
})


def _alerts(rule: dict) -> list[dict]:
    return [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)}


def test_alerts_yaml_is_what_rules_py_generates():
    assert (MONITORING / "alerts.yaml").read_text() == rules.render_alerts_file(), (
        "monitoring/alerts.yaml is stale: run python -m llmplane.monitoring.rules --write")


def test_alerts_yaml_is_a_prometheus_rule():
    rule = rules.load()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"]


def test_every_alert_has_a_summary_and_a_runbook_section():
    anchors = _anchors((MONITORING / "runbook.md").read_text())
    for alert in _alerts(rules.load()):
        assert alert["annotations"]["summary"]
        path, _, anchor = alert["annotations"]["runbook_url"].partition("#")
        assert path == "monitoring/runbook.md"
        assert anchor in anchors, f"runbook.md has no section for {alert['alert']}"


def test_the_issue_s_alerts_are_all_there():
    assert {a["alert"] for a in _alerts(rules.load())} == {
        "VllmTtftBudgetBurnFast", "VllmTtftBudgetBurnSlow", "VllmErrorBudgetBurnFast", "VllmErrorBudgetBurnSlow",
        "VllmQueueBacklog", "VllmKvCacheSaturated", "VllmPreemptions", "VllmNoReadyReplicas", "GpuXidErrors",
        "VllmCanaryWorseThanBaseline",
    }


def test_burn_rate_alerts_use_the_sre_workbook_windows_and_rates():
    exprs = {a["alert"]: a["expr"] for a in _alerts(rules.load())}
    for slo, record in (("Ttft", "vllm_ttft_slow"), ("Error", "vllm_request_errors")):
        fast, slow = exprs[f"Vllm{slo}BudgetBurnFast"], exprs[f"Vllm{slo}BudgetBurnSlow"]
        assert re.search(rf"{record}:ratio_rate1h > 14.4 \*.*\n.*\n.*{record}:ratio_rate5m > 14.4 \*", fast)
        assert re.search(rf"{record}:ratio_rate6h > 6 \*.*\n.*\n.*{record}:ratio_rate30m > 6 \*", fast)
        assert re.search(rf"{record}:ratio_rate1d > 3 \*.*\n.*\n.*{record}:ratio_rate2h > 3 \*", slow)
        assert re.search(rf"{record}:ratio_rate3d > 1 \*.*\n.*\n.*{record}:ratio_rate6h > 1 \*", slow)


def test_slo_numbers_are_parameters():
    rule = rules.prometheus_rule(rules.AlertParams(slo=rules.Slo(ttft_seconds=1.0, availability_objective=0.99)))
    text = rules.dump(rule)
    assert 'le=~"1.0|1"' in text and "14.4 * 0.01\n" in text
    assert "* 0.001" not in text


def test_models_that_keep_the_default_slo_change_nothing():
    same = rules.AlertParams(slos={"llama-3-8b": rules.Slo(), "llama-3-70b": rules.Slo()})
    assert rules.prometheus_rule(same) == rules.prometheus_rule()


def test_per_model_slos_change_only_the_slow_first_token_ratios_and_the_alerts_that_use_an_slo():
    default, per_model = rules.prometheus_rule(), rules.prometheus_rule(PER_MODEL_SLOS)
    changed = [(a.get("record") or a["alert"]) for g, h in zip(default["spec"]["groups"], per_model["spec"]["groups"])
               for a, b in zip(g["rules"], h["rules"], strict=True) if a != b]
    assert set(changed) == BURN_ALERTS | {"VllmCanaryWorseThanBaseline"} | {
        f"llmplane:vllm_ttft_slow:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")}


def test_each_model_is_held_to_its_own_budget_and_bound():
    text = rules.dump(rules.prometheus_rule(PER_MODEL_SLOS))
    assert '_bucket{le="2.5", model!="mistral-7b"}[1h]' in text
    assert '_bucket{le=~"1.0|1", model="mistral-7b"}[1h]' in text
    assert 'ratio_rate1h{model!~"llama-3-70b|mistral-7b"} > 14.4 * 0.01\n' in text
    assert 'ratio_rate1h{model="llama-3-70b"} > 14.4 * 0.05\n' in text
    assert 'ratio_rate1h{model="mistral-7b"} > 14.4 * 0.01\n' in text
    # mistral-7b keeps the default availability, so it shares the default's branches.
    assert 'errors:ratio_rate1h{model!="llama-3-70b"} > 14.4 * 0.001\n' in text
    assert 'errors:ratio_rate1h{model="llama-3-70b"} > 14.4 * 0.01\n' in text


def test_each_model_s_canary_is_judged_against_its_own_bound_and_objective():
    canary = {a["labels"]["signal"]: a["expr"] for a in _alerts(rules.prometheus_rule(PER_MODEL_SLOS))
              if a["alert"] == "VllmCanaryWorseThanBaseline"}
    assert 'baseline_ttft_p99:rate10m{model!="mistral-7b"} < 2.5)\n' in canary["ttft_p99"]
    assert 'baseline_ttft_p99:rate10m{model="mistral-7b"} < 1)\n' in canary["ttft_p99"]
    assert 'baseline_errors:ratio_rate10m{model!="llama-3-70b"}, 0.001)\n' in canary["error_ratio"]
    assert 'baseline_errors:ratio_rate10m{model="llama-3-70b"}, 0.01)\n' in canary["error_ratio"]


def test_a_ttft_threshold_between_histogram_buckets_is_refused():
    with pytest.raises(ValueError, match=r"ttft_seconds=2.0 is not a bucket bound of vllm:time_to_first_token"):
        rules.Slo(ttft_seconds=2.0)


def test_time_scale_shortens_windows_and_for_durations_for_tests():
    rule = rules.prometheus_rule(rules.AlertParams(time_scale=60, evaluation_interval="1s"))
    groups = rule["spec"]["groups"]
    assert {g["interval"] for g in groups} == {"1s"}
    first = groups[0]["rules"][0]
    assert first["record"] == "llmplane:vllm_ttft_slow:ratio_rate5m" and "[5s]" in first["expr"]
    fast = next(a for a in _alerts(rule) if a["alert"] == "VllmTtftBudgetBurnFast")
    assert fast["for"] == "2s"


def test_rule_groups_refuses_other_kinds():
    with pytest.raises(ValueError, match="expected a PrometheusRule, got kind 'ConfigMap'"):
        rules.rule_groups({"kind": "ConfigMap"})


def test_every_alert_has_a_firing_and_a_quiet_promtool_case():
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in (MONITORING / "tests").glob("*.yaml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a["alert"] for a in _alerts(rules.load())}
    assert names <= firing, f"no firing case for {sorted(names - firing)}"
    assert names <= quiet, f"no quiet case for {sorted(names - quiet)}"


@pytest.fixture
def promtool_dir(tmp_path: Path) -> Path:
    """monitoring/tests/*.yaml beside the plain rules extracted from alerts.yaml and built with PER_MODEL_SLOS."""
    (tmp_path / "rules.yaml").write_text(rules.dump(rules.rule_groups(rules.load())))
    (tmp_path / "per_model_rules.yaml").write_text(rules.dump(rules.rule_groups(rules.prometheus_rule(PER_MODEL_SLOS))))
    for path in (MONITORING / "tests").glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("rule_file", ["rules.yaml", "per_model_rules.yaml"])
def test_promtool_check_rules(promtool_dir: Path, rule_file: str):
    result = _promtool("check", "rules", rule_file, cwd=promtool_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "FAILED" not in result.stdout, result.stdout


def test_promtool_check_rules_with_test_time_scale(tmp_path: Path):
    rule = rules.prometheus_rule(rules.AlertParams(time_scale=60, evaluation_interval="1s"))
    (tmp_path / "rules.yaml").write_text(rules.dump(rules.rule_groups(rule)))
    result = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(promtool_dir: Path):
    files = sorted(p.name for p in (MONITORING / "tests").glob("*.yaml"))
    assert len(files) >= 6
    result = _promtool("test", "rules", *files, cwd=promtool_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout
