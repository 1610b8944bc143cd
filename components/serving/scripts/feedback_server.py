"""llmplane feedback service: clients rate the answers they got, and Prometheus counts the ratings per arm.

A client posts `{"response_id": ..., "model": ..., "version": ..., "score": 0..1}` and/or `"label"` (one of
`LABELS`) to the gateway's `/feedback` route; `version` is the one the gateway named in the answer's
`x-llmplane-served-by` header (`<model>@<version>/<cluster>`). The tenant is never taken from the body: the
gateway's API-key filter authenticates the caller and forwards its client id (`<tenant>.<key name>`) in
`CLIENT_HEADER`, which it overwrites on every request.

Exported per arm (model, version, tenant): `llmplane_feedback_total{label}`, and the scores as the summary
`llmplane_feedback_score` (`_sum`, `_count`), which the experiment report and dashboard read.

It never holds prompt or response text: a body is at most `MAX_BODY_BYTES`, only the five known fields are
accepted (a body with `prompt`, `messages` or any other field is refused before anything is counted), no body
or header is logged or kept, and counters only take label values read from the configuration.

Usage: python3 feedback_server.py --config CONFIG.json [--host 0.0.0.0] [--port 8080] [--metrics-port 9090]
CONFIG.json: {"models": {"<model>": ["<version>", ...]}, "tenants": {"<tenant>": ["<model>", ...]}}
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Summary, disable_created_metrics, start_http_server

PATH = "/feedback"
"""Where feedback is posted (the gateway's route keeps the path)."""
HEALTH_PATH = "/healthz"
"""Probe path."""
CLIENT_HEADER = "x-llmplane-client"
"""The authenticated client id the gateway forwards: `<tenant>.<key name>`."""
LABELS = ("success", "failure", "refusal")
"""Outcome labels: the task succeeded, it failed, the model refused."""
FIELDS = ("response_id", "model", "version", "score", "label")
"""The only fields a post may carry."""
TEXT_FIELDS = ("prompt", "messages", "text", "response", "completion", "content", "input", "output", "choices")
"""Fields that would carry conversation text: refused with a message saying why."""
MAX_BODY_BYTES = 1024
"""Largest body read: room for the fields, none for a conversation."""
RESPONSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""An answer's id as vLLM returns it (`chatcmpl-...`, `cmpl-...`): no room for text."""
SHOWN = 64
"""Characters of a refused value echoed back in an error."""


class Refused(Exception):
    """A post the service does not count: HTTP status, the field at fault and what to do."""

    def __init__(self, status: int, field: str | None, message: str):
        super().__init__(message)
        self.status = status
        self.field = field


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


class Config:
    """What may be rated: the deployed versions of each model, and the models each tenant may call."""

    def __init__(self, document: Mapping[str, Any]):
        models, tenants = document.get("models"), document.get("tenants")
        if not isinstance(models, dict) or not models:
            raise ValueError(f"feedback config: 'models' is {_shown(models)}; give an object of model name to its "
                             "deployed versions, e.g. {\"llama-3-8b\": [\"1.0.0\"]}")
        if not isinstance(tenants, dict) or not tenants:
            raise ValueError(f"feedback config: 'tenants' is {_shown(tenants)}; give an object of tenant name to "
                             "the models it may call, e.g. {\"search\": [\"llama-3-8b\"]}")
        for model, versions in models.items():
            if not isinstance(versions, list) or not versions or not all(isinstance(v, str) for v in versions):
                raise ValueError(f"feedback config: models.{model} is {_shown(versions)}; give a list of its "
                                 "deployed versions")
        for tenant, allowed in tenants.items():
            if not isinstance(allowed, list) or not all(isinstance(m, str) for m in allowed):
                raise ValueError(f"feedback config: tenants.{tenant} is {_shown(allowed)}; give a list of models")
        self.versions: dict[str, frozenset[str]] = {m: frozenset(v) for m, v in models.items()}
        self.tenants: dict[str, frozenset[str]] = {t: frozenset(m) for t, m in tenants.items()}


class Meters:
    """The per-arm counters, in their own registry."""

    def __init__(self, registry: CollectorRegistry):
        self.outcomes = Counter("llmplane_feedback", "Feedback labels posted per arm.",
                                ("model", "version", "tenant", "label"), registry=registry)
        self.scores = Summary("llmplane_feedback_score", "Feedback scores (0 to 1) posted per arm.",
                              ("model", "version", "tenant"), registry=registry)


def tenant_of(client_id: str | None, config: Config) -> str:
    """The tenant of the gateway's authenticated client id, or a refusal."""
    if not client_id:
        raise Refused(401, None, f"no authenticated tenant: post to the gateway's {PATH} route with your tenant "
                                 "API key in x-api-key")
    tenant = client_id.split(".", 1)[0]
    if tenant not in config.tenants:
        raise Refused(403, None, f"tenant '{tenant}' may not post feedback here: it calls none of the models "
                                 "under experiment")
    return tenant


def read_post(body: bytes, tenant: str, config: Config) -> tuple[str, str, float | None, str | None]:
    """Model, version, score and label of one valid post; every other post is a `Refused` naming its field."""
    try:
        post = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, None, "the body is not JSON: post an object with response_id, model, version and a "
                                 "score or label") from None
    if not isinstance(post, dict):
        raise Refused(400, None, "the body is not a JSON object: post {\"response_id\": ..., \"model\": ..., "
                                 "\"version\": ..., \"score\": 0.8}")
    for field in post:
        if field in TEXT_FIELDS:
            raise Refused(400, field, f"field '{field}' is refused: feedback never carries prompt or response "
                                      "text; send only response_id, model, version, score and label")
        if field not in FIELDS:
            raise Refused(400, field, f"unknown field '{field[:SHOWN]}'; a post has only "
                                      f"{', '.join(FIELDS)}")
    response_id = post.get("response_id")
    if not isinstance(response_id, str) or not RESPONSE_ID.fullmatch(response_id):
        raise Refused(400, "response_id", f"response_id {_shown(response_id)} is not an answer id; give the `id` "
                                          "of the answer (letters, digits, '.', '_', ':', '-'; at most 128)")
    model = post.get("model")
    if model not in config.versions:
        raise Refused(400, "model", f"model {_shown(model)} has no experiment here; give one of "
                                    f"{', '.join(sorted(config.versions))}")
    version = post.get("version")
    if version not in config.versions[model]:
        raise Refused(400, "version", f"version {_shown(version)} of {model} is not deployed; give the version of "
                                      "the answer's x-llmplane-served-by header, one of "
                                      f"{', '.join(sorted(config.versions[model]))}")
    if model not in config.tenants[tenant]:
        raise Refused(403, "model", f"tenant '{tenant}' may not call {model}, so it may not rate its answers")
    score, label = post.get("score"), post.get("label")
    if score is None and label is None:
        raise Refused(400, "score", "neither score nor label given: give a score from 0 to 1, a label "
                                    f"({', '.join(LABELS)}), or both")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)
                              or not math.isfinite(score) or not 0 <= score <= 1):
        raise Refused(400, "score", f"score {_shown(score)} is not a number from 0 to 1; give e.g. 0.8")
    if label is not None and label not in LABELS:
        raise Refused(400, "label", f"label {_shown(label)} is unknown; give one of {', '.join(LABELS)}")
    return model, version, None if score is None else float(score), label


def handler(config: Config, meters: Meters) -> type[BaseHTTPRequestHandler]:
    """The request handler bound to a configuration and its counters."""

    class Feedback(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The status line and headers go out before the body, as two writes: with Nagle's algorithm the body then
        # waits for the client's delayed ACK (40 ms on Linux), which caps a kept-alive connection, as the
        # gateway's are, at about 25 posts a second.
        disable_nagle_algorithm = True
        server_version = "llmplane-feedback"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path == HEALTH_PATH:
                self._answer(200, {"status": "ok"})
            else:
                self._answer(404, {"error": f"no such path; post feedback to {PATH}"})

        def do_POST(self) -> None:
            if self.path != PATH:
                self._answer(404, {"error": f"no such path; post feedback to {PATH}"})
                return
            try:
                tenant = tenant_of(self.headers.get(CLIENT_HEADER), config)
                length = self.headers.get("content-length")
                if length is None or not length.isdigit():
                    self.close_connection = True
                    raise Refused(411, None, "no Content-Length: send the body with its length")
                if int(length) > MAX_BODY_BYTES:
                    # Not read at all: the connection is closed instead.
                    self.close_connection = True
                    raise Refused(413, None, f"the body is {length} bytes; feedback fits in {MAX_BODY_BYTES} "
                                             "(it carries ids and a rating, never text)")
                model, version, score, label = read_post(self.rfile.read(int(length)), tenant, config)
            except Refused as refusal:
                self._answer(refusal.status, {"error": str(refusal), **({"field": refusal.field}
                                                                        if refusal.field else {})})
                return
            if label is not None:
                meters.outcomes.labels(model, version, tenant, label).inc()
            if score is not None:
                meters.scores.labels(model, version, tenant).observe(score)
            self._answer(202, {"accepted": True})

        def _answer(self, status: int, document: dict[str, Any]) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # Method, path and status only: never a header (x-api-key rides along) or a body.
            sys.stderr.write(f"{self.command} {self.path[:SHOWN]} {code}\n")

        def log_message(self, format: str, *args: Any) -> None:
            # The base class logs malformed requests with their request line: say only that one was refused.
            sys.stderr.write("refused a malformed request\n")

    return Feedback


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON file naming the deployed versions and tenants")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port of the feedback API (the gateway's)")
    parser.add_argument("--metrics-port", type=int, default=9090, help="port of /metrics (Prometheus')")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as file:
        config = Config(json.load(file))
    disable_created_metrics()
    registry = CollectorRegistry()
    meters = Meters(registry)
    start_http_server(args.metrics_port, addr=args.host, registry=registry)
    server = ThreadingHTTPServer((args.host, args.port), handler(config, meters))
    sys.stderr.write(f"feedback on {args.host}:{args.port}{PATH}, metrics on :{args.metrics_port}/metrics\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
