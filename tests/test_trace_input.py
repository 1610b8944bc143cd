"""Trace files as users hand them over: a clean error for what is not a trace, no silent repair, and requests
vLLM would refuse counted as refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from llmplane.capacity.planner import format_table, plan
from llmplane.capacity.trace import TraceError, read_trace

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def trace_file(tmp_path: Path, body: str | bytes) -> Path:
    path = tmp_path / "trace.csv"
    path.write_bytes(body if isinstance(body, bytes) else (HEADER + body).encode())
    return path


@pytest.mark.parametrize(("body", "message"), [
    ("2023-11-16 18:15:46.6805900+00:00,100,10\n", "carries a time zone; write naive UTC times"),
    ("2023-11-16T18:15:46Z,100,10\n", "carries a time zone"),
    ("yesterday,100,10\n", "is not YYYY-MM-DD HH:MM:SS[.fraction]"),
    ("2023-11-16 18:15:46.1,0,10\n", "ContextTokens is 0; every request has at least one token"),
    ("2023-11-16 18:15:46.1,100,-3\n", "GeneratedTokens is -3; every request has at least one token"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "is not a text CSV"),
    (HEADER.encode() + b"2023-11-16 18:15:46.1,1\x0000,10\n", "is not a text CSV"),
])
def test_what_is_not_a_trace_is_one_clean_error(tmp_path, body, message):
    path = trace_file(tmp_path, body)
    with pytest.raises(TraceError, match=re.escape(message)) as raised:
        read_trace(path)
    assert str(path) in str(raised.value)


def test_prompts_that_fill_max_model_len_are_counted_as_rejected(tmp_path, load, env_config):
    spec = load(env_config("local"), "local")
    limit = spec.models["llama-3-8b"].engine.max_model_len
    rows = [f"2023-11-16 18:15:{s:02d}.0,{200 if s % 4 else limit},50\n" for s in range(40)]
    result = plan(spec, read_trace(trace_file(tmp_path, "".join(rows))))
    assert result.rejected == 10
    assert len(result.trace) == 30
    assert "rejected: 10 of 40 requests (25.00%) have prompts that fill maxModelLen=8192" in format_table(result)


def test_replay_cost_follows_the_requests_not_the_calendar(tmp_path, load, env_config):
    """Two requests a year apart: the idle year is not stepped through, yet static is billed for all of it."""
    import time

    spec = load(env_config("dev"), "dev")
    path = trace_file(tmp_path, "2023-01-01 00:00:00.0,100,10\n2023-12-31 23:00:00.0,100,10\n")
    started = time.perf_counter()
    result = plan(spec, read_trace(path))
    elapsed = time.perf_counter() - started
    assert elapsed < 5, f"a two-request trace took {elapsed:.1f} s to plan"
    span_hours = result.span_seconds / 3600
    assert span_hours == 8759
    assert result.row("static").result.gpu_hours >= span_hours, "the static fleet is billed through the idle year"
    assert result.row("oracle").result.gpu_hours < 1
    assert "idle: 8758.0 h without requests replayed as settled fleets" in format_table(result)
