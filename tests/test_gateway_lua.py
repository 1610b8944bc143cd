"""The token-usage Lua filter itself, run by Lua 5.4 through a harness with a fake Envoy stream handle: usage
read from vLLM's JSON answers and from the last chunk of its SSE streams (also when split across chunks), streamed
requests made to ask for usage whatever the client sent, the metadata the rate limiter and access log read, and
the `x-llmplane-model` header. The fields it reads are vLLM 0.14.0's own."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from llmplane.components.gateway.route_refs import MODEL_REWRITE_HEADER
from llmplane.components.gateway.tenant_budgets import CLIENT_HEADER, USAGE_METADATA
from llmplane.components.gateway.token_usage import LUA_SOURCE
from llmplane.components.serving.model_rollout import SERVED_BY_HEADER

from tests import vllm_wheel

HARNESS = Path(__file__).with_name("lua") / "token_usage_harness.lua"
LUA = shutil.which("lua5.4")
USAGE = '{"prompt_tokens":12,"total_tokens":30,"completion_tokens":18,"prompt_tokens_details":null}'


def lua_literal(value: object) -> str:
    """A Python value as a Lua constructor; strings byte by byte with decimal escapes where needed."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        out = []
        for byte in value.encode():
            char = chr(byte)
            out.append(char if 32 <= byte < 127 and char not in '"\\' else f"\\{byte:03d}")
        return '"' + "".join(out) + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def run(case: dict, tmp_path: Path) -> object:
    if LUA is None:
        pytest.fail("lua5.4 is missing: run `.ci/services.sh install` (apt-get install lua5.4)")
    case_file = tmp_path / "case.lua"
    case_file.write_text("return " + lua_literal(case))
    filter_file = tmp_path / "token_usage.lua"
    filter_file.write_text(LUA_SOURCE)
    done = subprocess.run([LUA, str(HARNESS), str(filter_file), str(case_file)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def call(tmp_path: Path, function: str, *args: str) -> list:
    return run({"call": function, "args": list(args)}, tmp_path)


def test_usage_from_a_json_answer(tmp_path):
    body = ('{"id":"chatcmpl-1","object":"chat.completion","model":"llama-3-8b","choices":[{"index":0,'
            '"message":{"role":"assistant","content":"say \\"usage\\":{\\"total_tokens\\":999}"}}],'
            f'"usage":{USAGE}}}')
    assert call(tmp_path, "parse_usage", body) == [{"prompt_tokens": 12, "completion_tokens": 18,
                                                    "total_tokens": 30}]


def test_usage_from_the_last_sse_chunk_not_from_text_that_mentions_it(tmp_path):
    chunk = ('data: {"id":"c","object":"chat.completion.chunk","model":"llama-3-8b","choices":[{"index":0,'
             '"delta":{"content":",\\"usage\\":{\\"total_tokens\\":7}"}}],"usage":null}\n\n')
    last = f'data: {{"id":"c","object":"chat.completion.chunk","model":"llama-3-8b","choices":[],"usage":{USAGE}}}\n\n'
    assert call(tmp_path, "parse_usage", chunk + last + "data: [DONE]\n\n") == [
        {"prompt_tokens": 12, "completion_tokens": 18, "total_tokens": 30}]
    assert call(tmp_path, "parse_usage", chunk + "data: [DONE]\n\n") == [None]


def test_embeddings_usage_has_no_completion_and_costs_its_prompt(tmp_path):
    body = '{"object":"list","data":[],"model":"e5","usage":{"prompt_tokens":9,"total_tokens":9}}'
    assert call(tmp_path, "parse_usage", body) == [{"prompt_tokens": 9, "completion_tokens": 0,
                                                    "total_tokens": 9}]


@pytest.mark.parametrize("body, expected", [
    ('{"model":"m","stream":true,"messages":[]}',
     '{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}'),
    ('{"model":"m","stream":true,"stream_options":{"include_usage":false}}',
     '{"model":"m","stream":true,"stream_options":{"include_usage":true}}'),
    ('{"model":"m","stream":true,"stream_options":{"include_usage":null}}',
     '{"model":"m","stream":true,"stream_options":{"include_usage":true}}'),
    ('{"model":"m","stream":true,"stream_options":{ }}',
     '{"model":"m","stream":true,"stream_options":{"include_usage":true }}'),
    ('{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":false}}',
     '{"model":"m","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":false}}'),
    ('{"model":"m","stream":true,"stream_options":null}',
     '{"model":"m","stream":true,"stream_options":{"include_usage":true}}'),
], ids=["absent", "false", "null", "empty", "other-option", "options-null"])
def test_a_streamed_request_always_asks_for_usage(tmp_path, body, expected):
    [rewritten] = call(tmp_path, "with_usage_requested", body)
    assert rewritten == expected
    assert json.loads(rewritten)["stream_options"]["include_usage"] is True


@pytest.mark.parametrize("body", [
    '{"model":"m","messages":[{"role":"user","content":"\\"stream\\": true"}]}',
    '{"model":"m","stream":false}',
    '{"model":"m","stream":true,"stream_options":{"include_usage":true}}',
], ids=["mentioned-in-text", "not-streamed", "already-asked"])
def test_other_requests_are_left_alone(tmp_path, body):
    assert call(tmp_path, "with_usage_requested", body) == [None]


def test_served_by_and_client_id_split(tmp_path):
    assert call(tmp_path, "parse_served_by", "llama-3-8b@1.1.0/aws-use1") == ["llama-3-8b", "1.1.0", "aws-use1"]
    assert call(tmp_path, "tenant_of", "search.searchApiKey") == ["search"]


def test_the_request_phase_rewrites_the_body_and_notes_tenant_and_model(tmp_path):
    body = '{"model":"llama-3-8b","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    out = run({"phase": "request", "chunks": [body],
               "headers": {"x-llmplane-client": "search.searchApiKey", "content-length": str(len(body))}}, tmp_path)
    sent = json.loads(out["body"])
    assert sent["stream_options"] == {"include_usage": True} and sent["messages"][0]["content"] == "hi"
    assert out["headers"]["content-length"] == str(len(out["body"]))
    assert out["metadata"] == {"llmplane.usage": {"tenant": "search", "model": "llama-3-8b"}}


def test_a_failover_request_is_counted_for_the_model_it_is_rewritten_to(tmp_path):
    out = run({"phase": "request", "chunks": ['{"model":"llama-3-70b"}'],
               "headers": {"x-gateway-model-name-rewrite": "llama-3-8b"}}, tmp_path)
    assert out["metadata"]["llmplane.usage"]["model"] == "llama-3-8b"


def test_the_response_phase_reads_usage_split_across_chunks_and_names_the_model(tmp_path):
    stream = (f'data: {{"id":"c","model":"llama-3-8b","choices":[{{"delta":{{"content":"{"x" * 5000}"}}}}]}}\n\n'
              f'data: {{"id":"c","model":"llama-3-8b","choices":[],"usage":{USAGE}}}\n\ndata: [DONE]\n\n')
    cut = stream.index('"completion_tokens"')
    out = run({"phase": "response", "chunks": [stream[:cut], stream[cut:]],
               "headers": {"x-llmplane-served-by": "llama-3-8b@1.1.0/aws-use1", ":status": "200"},
               "metadata": {"llmplane.usage": {"tenant": "search", "model": "llama-3-8b"}}}, tmp_path)
    assert out["metadata"]["llmplane.usage"] == {
        "tenant": "search", "model": "llama-3-8b", "version": "1.1.0", "cluster": "aws-use1",
        "prompt_tokens": 12, "completion_tokens": 18, "total_tokens": 30}
    assert out["headers"]["x-llmplane-model"] == "llama-3-8b"


def test_a_model_named_further_along_a_failover_chain_is_kept(tmp_path):
    out = run({"phase": "response", "chunks": [f'{{"model":"llama-3-8b","usage":{USAGE}}}'],
               "headers": {"x-llmplane-model": "llama-3-8b", "x-llmplane-served-by": "llama-3-70b@2.0.0/gcp-euw4"},
               "metadata": {"llmplane.usage": {"model": "llama-3-70b"}}}, tmp_path)
    assert out["headers"]["x-llmplane-model"] == "llama-3-8b"


def test_the_filter_reads_the_usage_fields_vllm_defines():
    protocol = "vllm/entrypoints/openai/protocol.py"
    assert {"prompt_tokens", "completion_tokens", "total_tokens"} <= vllm_wheel.dataclass_fields(protocol,
                                                                                                   "UsageInfo")
    assert "include_usage" in vllm_wheel.dataclass_fields(protocol, "StreamOptions")
    for field in ("prompt_tokens", "completion_tokens", "total_tokens", "include_usage"):
        assert f'"{field}"' in LUA_SOURCE


def test_the_filter_speaks_the_names_the_gateway_configuration_uses():
    for name in (USAGE_METADATA[0], CLIENT_HEADER, MODEL_REWRITE_HEADER, SERVED_BY_HEADER):
        assert f'"{name}"' in LUA_SOURCE, name
    assert f'"{USAGE_METADATA[1]}"' in LUA_SOURCE
