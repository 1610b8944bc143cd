"""Every LogQL query that ships parses with Grafana's own grammar, and selects only labels our log pipeline
attaches (the Alloy configuration the observability stack deploys)."""

from __future__ import annotations

import pytest
from llmplane.components.gateway.envoy_gateway import ACCESS_LOG_FIELDS
from llmplane.components.observability.stack import alloy_stream_labels
from llmplane.toolchain.logql import ShippedQuery, parse, shipped_queries

SHIPPED = shipped_queries()


def test_the_dashboard_the_runbook_and_the_loki_ruler_ship_log_queries():
    assert {q.where for q in SHIPPED} == {"dashboard", "monitoring/runbook.md", "loki ruler"}
    assert len(SHIPPED) >= 5


@pytest.fixture(scope="module")
def parsed() -> dict[ShippedQuery, object]:
    return dict(zip(SHIPPED, parse([q.query for q in SHIPPED])))


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda q: f"{q.where}:{q.query[:40]}")
def test_each_shipped_query_parses_and_selects_pipeline_labels(parsed, shipped: ShippedQuery):
    result = parsed[shipped]
    assert result.ok, (f"{shipped.where}: LogQL syntax error at offset {result.error_at}: "
                       f"{shipped.query[:result.error_at]}⟨here⟩{shipped.query[result.error_at:]}")
    assert result.labels, f"{shipped.query} selects no stream"
    # The ruler's queries also filter on the access lines' JSON fields (and on parse errors).
    extracted = {*ACCESS_LOG_FIELDS, "__error__"} if shipped.where == "loki ruler" else set()
    assert set(result.labels) <= alloy_stream_labels() | extracted, (shipped.query, result.labels)


def test_the_grammar_finds_a_syntax_error_and_where_it_is():
    broken = '{model="llama-3-8b" | json'
    [result] = parse([broken])
    assert not result.ok and result.error_at is not None and result.error_at > 0
