"""`llmplane diff`: a pull request's effect on an environment, resource by resource, for reviewers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from llmplane.stacks.review import DiffError, markdown, review

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A clean clone of the committed project: the head side, edited by tests."""
    target = tmp_path_factory.mktemp("clone") / "llmplane"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    return target


def test_a_clean_tree_has_no_changes(clone):
    result = review("prod", "HEAD", head_root=clone)
    assert result.changes == [] and result.new_violations == []
    assert markdown(result).endswith("No changes.")


def test_moving_the_canary_shows_only_the_weight_lines_of_each_gateways_version_split(clone):
    path = clone / "environments" / "Pulumi.prod.yaml"
    original = path.read_text()
    config = yaml.safe_load(original)
    versions = config["config"]["llmplane:models"]["llama-3-8b"]["versions"]
    versions[0]["weight"], versions[1]["weight"] = 75, 25
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        result = review("prod", "HEAD", head_root=clone)
    finally:
        path.write_text(original)
    assert {c.type for c in result.changes} == {"kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyExtensionPolicy"}
    assert {c.kind for c in result.changes} == {"changed"}
    text = markdown(result)
    row = ('| `spec.lua[0].inline` | `{"1.0.0", 90},`<br>`{"1.1.0", 10},` | `{"1.0.0", 75},`<br>`{"1.1.0", 25},` |')
    assert text.count(row) == len(result.changes) == 4
    assert text.count("**changed** `") == len(result.changes)


def test_an_unknown_base_ref_is_a_clear_error(clone):
    with pytest.raises(DiffError, match="--base 'no-such-ref' does not name a commit"):
        review("dev", "no-such-ref", head_root=clone)
