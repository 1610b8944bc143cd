"""The offline plan's shortcuts through the SDK (stacks/plan.py `sdk_shortcuts`): no stack capture, type tables
remembered, and only while a program runs under the mocks; a failing program leaves the SDK as it was too."""

from __future__ import annotations

import pulumi
import pytest
from llmplane.stacks.plan import MEMOIZED_TYPE_FUNCTIONS, record_program, sdk_shortcuts
from pulumi import _types as pulumi_types
from pulumi.runtime import resource as pulumi_resource


def _sdk_functions() -> list:
    return [pulumi_resource._get_stack_trace, *(getattr(pulumi_types, name) for name in MEMOIZED_TYPE_FUNCTIONS)]


def test_the_sdk_is_restored_after_a_program_and_after_a_failing_one():
    before = _sdk_functions()
    seen = []

    def program() -> None:
        seen.append(_sdk_functions())
        pulumi.CustomResource("test:index:Thing", "thing", {"size": 1})

    resources = record_program(program, "shortcuts", "test", {})
    assert [r.name for r in resources] == ["thing"] and resources[0].inputs == {"size": 1}
    assert seen and all(a is not b for a, b in zip(seen[0], before, strict=True))
    assert _sdk_functions() == before

    def failing() -> None:
        raise RuntimeError("boom")

    with pytest.raises(Exception, match="boom"):
        record_program(failing, "shortcuts", "test", {})
    assert _sdk_functions() == before


def test_remembered_type_functions_answer_as_the_sdk_does():
    annotations = [pulumi.Input[str], pulumi.Output[int], "str", list[int], dict[str, pulumi.Input[str]]]
    expected = [pulumi_types.unwrap_type(a) for a in annotations]
    with sdk_shortcuts():
        assert [pulumi_types.unwrap_type(a) for a in annotations] == expected
        assert [pulumi_types.unwrap_type(a) for a in annotations] == expected  # the remembered answers
        assert pulumi_resource._get_stack_trace().frames == []
