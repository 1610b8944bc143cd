"""The feedback service, run for real on 127.0.0.1: ratings counted per arm and tenant, bad posts refused with the
field at fault, the tenant taken only from the gateway's header, and no posted text kept or logged."""

from __future__ import annotations

import gc
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from llmplane.components.serving.feedback import SCRIPT
from llmplane.monitoring import vllm_metrics as vm
from llmplane.toolchain.localstack import free_port
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

CONFIG = {"models": {"llama-3-70b": ["1.0.0", "1.0.1"]},
          "tenants": {"search": ["llama-3-70b"], "batch-eval": ["llama-3-70b"], "support-bot": []}}
SEARCH = {"x-llmplane-client": "search.searchApiKey", "x-api-key": "sk-search-not-to-be-logged"}
BATCH = {"x-llmplane-client": "batch-eval.batchEvalApiKey"}


@dataclass
class Server:
    api: str
    metrics: str
    process: subprocess.Popen[str]

    def post(self, body: object, headers: dict[str, str]) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api}/feedback", data=data, method="POST",
                                         headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    def samples(self) -> dict[tuple[str, frozenset], float]:
        with urllib.request.urlopen(f"{self.metrics}/metrics", timeout=5) as page:
            text = page.read().decode()
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}


def _wait_healthy(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited: {process.communicate()}"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the feedback server never answered /healthz")


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    api, metrics = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--config", str(config), "--host", "127.0.0.1", "--port", str(api),
         "--metrics-port", str(metrics)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{api}", process)
        yield Server(f"http://127.0.0.1:{api}", f"http://127.0.0.1:{metrics}", process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _logs(server: Server) -> str:
    server.process.terminate()
    out, err = server.process.communicate(timeout=10)
    return out + err


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


def test_ratings_are_counted_per_arm_and_tenant(server: Server):
    posts = [(SEARCH, {"version": "1.0.0", "score": 0.5, "label": "success"}),
             (SEARCH, {"version": "1.0.0", "score": 1}),
             (SEARCH, {"version": "1.0.1", "score": 0.25, "label": "failure"}),
             (BATCH, {"version": "1.0.1", "label": "success"}),
             (BATCH, {"version": "1.0.1", "label": "success"}),
             (BATCH, {"version": "1.0.1", "label": "refusal"})]
    for headers, rating in posts:
        assert server.post({"response_id": "chatcmpl-1", "model": "llama-3-70b", **rating}, headers) == (
            202, {"accepted": True})
    seen = server.samples()
    arm = {"model": "llama-3-70b"}
    assert seen[key("llmplane_feedback_score_sum", **arm, version="1.0.0", tenant="search")] == 1.5
    assert seen[key("llmplane_feedback_score_count", **arm, version="1.0.0", tenant="search")] == 2
    assert seen[key("llmplane_feedback_score_sum", **arm, version="1.0.1", tenant="search")] == 0.25
    assert seen[key("llmplane_feedback_score_count", **arm, version="1.0.1", tenant="search")] == 1
    assert seen[key("llmplane_feedback_total", **arm, version="1.0.0", tenant="search", label="success")] == 1
    assert seen[key("llmplane_feedback_total", **arm, version="1.0.1", tenant="search", label="failure")] == 1
    assert seen[key("llmplane_feedback_total", **arm, version="1.0.1", tenant="batch-eval", label="success")] == 2
    assert seen[key("llmplane_feedback_total", **arm, version="1.0.1", tenant="batch-eval", label="refusal")] == 1
    assert not any(name == "llmplane_feedback_score_count" and ("tenant", "batch-eval") in labels
                   for name, labels in seen), "batch-eval posted no score"


def test_the_service_exports_exactly_the_catalogued_feedback_metrics(server: Server):
    """What the dashboard and the experiment report read is what the service writes (names, types, labels)."""
    server.post({"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 0.5, "label": "success"},
                SEARCH)
    with urllib.request.urlopen(f"{server.metrics}/metrics", timeout=5) as page:
        families = {f.name: (f.type, {k for s in f.samples for k in s.labels})
                    for f in text_string_to_metric_families(page.read().decode()) if f.name.startswith("llmplane_")}
    assert families == {m.name.removesuffix("_total"): (m.kind.value, set(m.labels)) for m in vm.FEEDBACK}


REFUSALS = [
    (SEARCH, {"response_id": "r1", "model": "llama-3-8b", "version": "1.0.0", "score": 1}, 400, "model",
     'model "llama-3-8b" has no experiment here; give one of llama-3-70b'),
    (SEARCH, {"response_id": "r1", "model": "llama-3-70b", "version": "1.1.0", "score": 1}, 400, "version",
     'version "1.1.0" of llama-3-70b is not deployed; give the version of the answer\'s x-llmplane-served-by '
     "header, one of 1.0.0, 1.0.1"),
    (SEARCH, {"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1.5}, 400, "score",
     "score 1.5 is not a number from 0 to 1; give e.g. 0.8"),
    (SEARCH, {"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": True}, 400, "score",
     "score true is not a number from 0 to 1; give e.g. 0.8"),
    (SEARCH, {"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "label": "great"}, 400, "label",
     'label "great" is unknown; give one of success, failure, refusal'),
    (SEARCH, {"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0"}, 400, "score",
     "neither score nor label given: give a score from 0 to 1, a label (success, failure, refusal), or both"),
    (SEARCH, {"response_id": "see my prompt", "model": "llama-3-70b", "version": "1.0.0", "score": 1}, 400,
     "response_id", 'response_id "see my prompt" is not an answer id; give the `id` of the answer (letters, '
     "digits, '.', '_', ':', '-'; at most 128)"),
    (SEARCH, {"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1, "prompt": "hi"}, 400,
     "prompt", "field 'prompt' is refused: feedback never carries prompt or response text; send only "
     "response_id, model, version, score and label"),
    (SEARCH, {"messages": [{"role": "user", "content": "hi"}], "response_id": "r1", "model": "llama-3-70b",
              "version": "1.0.0", "score": 1}, 400, "messages",
     "field 'messages' is refused: feedback never carries prompt or response text; send only response_id, "
     "model, version, score and label"),
    (SEARCH, {"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1, "tenant": "batch-eval"},
     400, "tenant", "unknown field 'tenant'; a post has only response_id, model, version, score, label"),
    ({}, {"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1}, 401, None,
     "no authenticated tenant: post to the gateway's /feedback route with your tenant API key in x-api-key"),
    ({"x-llmplane-client": "support-bot.supportBotApiKey"},
     {"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1}, 403, "model",
     "tenant 'support-bot' may not call llama-3-70b, so it may not rate its answers"),
    ({"x-llmplane-client": "intruder.key"},
     {"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1}, 403, None,
     "tenant 'intruder' may not post feedback here: it calls none of the models under experiment"),
    (SEARCH, b"not json", 400, None,
     "the body is not JSON: post an object with response_id, model, version and a score or label"),
]


@pytest.mark.parametrize(("headers", "body", "status", "field", "message"), REFUSALS,
                         ids=[f"{r[2]}-{r[3] or 'body'}-{i}" for i, r in enumerate(REFUSALS)])
def test_bad_posts_are_refused_naming_the_field_and_counted_nowhere(server: Server, headers, body, status, field,
                                                                    message):
    assert server.post(body, headers) == (status, {"error": message, **({"field": field} if field else {})})
    assert not [s for s in server.samples() if s[0].startswith("llmplane_")]


def test_a_body_big_enough_for_a_conversation_is_refused_unread(server: Server):
    body = json.dumps({"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1,
                       "note": "x" * 4000}).encode()
    status, answer = server.post(body, SEARCH)
    assert status == 413
    assert answer["error"].startswith(f"the body is {len(body)} bytes; feedback fits in 1024")


def test_the_tenant_is_the_gateway_s_not_the_body_s(server: Server):
    """The gateway's API-key filter writes the client id; a body cannot name a tenant, and the key never counts."""
    assert server.post({"response_id": "r1", "model": "llama-3-70b", "version": "1.0.1", "label": "success"},
                       BATCH)[0] == 202
    tenants = {dict(labels).get("tenant") for name, labels in server.samples() if name == "llmplane_feedback_total"}
    assert tenants == {"batch-eval"}


def test_no_posted_text_or_key_reaches_the_logs(server: Server):
    text = f"my secret prompt {uuid.uuid4().hex}"
    server.post({"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1, "prompt": text},
                SEARCH)
    server.post({"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1, "note": text},
                SEARCH)
    server.post({"response_id": "r1", "model": text, "version": "1.0.0", "score": 1}, SEARCH)
    assert server.post({"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1},
                       SEARCH)[0] == 202
    logs = _logs(server)
    assert "POST /feedback 202" in logs and "POST /feedback 400" in logs
    assert text.split()[-1] not in logs
    assert SEARCH["x-api-key"] not in logs


def test_a_kept_alive_connection_gets_each_answer_at_once(server: Server):
    """The gateway keeps its connections to the service open: 200 posts on one of them take well under a second
    (with Nagle's algorithm on, each answer's body waited for the client's delayed ACK: about 9 s)."""
    import http.client

    host, port = server.api.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    body = json.dumps({"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "label": "success"})
    started = time.perf_counter()
    for _ in range(200):
        connection.request("POST", "/feedback", body, {"Content-Type": "application/json", **SEARCH})
        answer = connection.getresponse()
        assert answer.status == 202 and answer.read()
    elapsed = time.perf_counter() - started
    connection.close()
    assert elapsed < 2, f"200 posts on one connection took {elapsed:.1f} s"
    assert server.samples()[key("llmplane_feedback_total", model="llama-3-70b", version="1.0.0", tenant="search",
                                label="success")] == 200


def _load_script():
    spec = importlib.util.spec_from_file_location("llmplane_feedback_server_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _holders_of(fragment: str, exclude: tuple[object, ...]) -> list[str]:
    """Reachable strings and bytes that contain `fragment`, other than `exclude`."""
    found = []
    raw = fragment.encode()
    roots = [*gc.get_objects(), *sys._current_frames().values()]
    for holder in roots:
        for value in gc.get_referents(holder):
            if any(value is e for e in exclude):
                continue
            if (isinstance(value, str) and fragment in value) or (
                    isinstance(value, bytes | bytearray) and raw in value):
                found.append(f"{type(holder).__name__} holds {type(value).__name__}")
    return found


def test_the_running_service_keeps_no_posted_text_in_memory():
    """Served in this process, so its live objects can be searched once the posts are answered."""
    server_module = _load_script()
    meters = server_module.Meters(CollectorRegistry())
    config = server_module.Config(CONFIG)
    httpd = server_module.ThreadingHTTPServer(("127.0.0.1", 0), server_module.handler(config, meters))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    marker = uuid.uuid4().hex
    try:
        for body in (f'{{"prompt": "tell me {marker}", "response_id": "r1"}}',
                     f'{{"response_id": "r1", "model": "llama-3-70b", "version": "1.0.0", "score": 1, '
                     f'"comment": "{marker}"}}'):
            payload = body.encode()
            request = (f"POST /feedback HTTP/1.1\r\nHost: x\r\nx-llmplane-client: search.k\r\n"
                       f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload
            with socket.create_connection(httpd.server_address, timeout=5) as client:
                client.sendall(request)
                answer = b""
                while chunk := client.recv(4096):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 400")
            del body, payload, request, answer, chunk
        deadline = time.monotonic() + 5
        while (held := _holders_of(marker, (marker,))) and time.monotonic() < deadline:
            time.sleep(0.05)
            gc.collect()
        assert held == []
    finally:
        httpd.shutdown()
        httpd.server_close()
