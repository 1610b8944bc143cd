"""The local stack's data plane: requests follow the Gateway and HTTPRoutes the stack created to a ready pod.

Envoy has no build on any registry this machine reaches, so the embedded cluster has no proxy behind its
Gateway. This stand-in takes its place on 127.0.0.1: it reads the Gateways, HTTPRoutes, Services,
EndpointSlices and Pods from the API server, picks the route and rule the way Gateway API orders them
(listener and route hostnames, then an Exact path before the longest PathPrefix, then more header matches),
applies the rule's URLRewrite and RequestHeaderModifier filters, draws a backend by weight, and sends the
request to a ready endpoint of that Service. The fake GPU nodes run no vLLM, so the endpoint's pod is answered
by the simulator of its model (toolchain/completions.py), told which served names the pod has.

What it does not do, and refuses by name rather than ignoring: other filters, backends other than Services
(an InferencePool needs the endpoint picker, which the gateway tests run), TLS (it listens on plain HTTP; the
Host header picks the listener, as SNI and :authority do for Envoy).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from llmplane.toolchain.completions import LORA_PREFIX, SERVED_NAMES_HEADER

LOOPBACK = "127.0.0.1"
REFRESH_S = 1.0
ENDPOINT_HEADER = "x-llmplane-endpoint"
"""Response header naming the pod that answered (namespace/name), for a newcomer looking at `curl -i`."""
_CORE_KINDS = "namespaces,services,endpointslices.discovery.k8s.io,pods"
_ROUTE_KINDS = ("gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io")


class Refusal(Exception):
    """A request the gateway cannot send on: the status a proxy answers and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """Where one request goes: the pod's model (which simulator answers), served names, and the upstream path."""

    model: str
    served_names: tuple[str, ...]
    path: str
    pod: str
    headers: tuple[tuple[str, str], ...]


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host.count(".") >= pattern.count(".")
    return pattern == host


def _path_matches(match: dict, path: str) -> bool:
    wanted = match.get("path", {"type": "PathPrefix", "value": "/"})
    value, kind = wanted.get("value", "/"), wanted.get("type", "PathPrefix")
    if kind == "Exact":
        return path == value
    if kind == "PathPrefix":
        prefix = value.rstrip("/")
        return path == prefix or path.startswith(prefix + "/") or value == "/"
    raise Refusal(500, f"path match type {kind} is not implemented by the local gateway")


def _headers_match(match: dict, headers: dict[str, str]) -> bool:
    for header in match.get("headers", []):
        if header.get("type", "Exact") != "Exact":
            raise Refusal(500, f"header match type {header['type']} is not implemented by the local gateway")
        if headers.get(header["name"].lower()) != header["value"]:
            return False
    return True


def _precedence(match: dict) -> tuple[int, int, int]:
    path = match.get("path", {"type": "PathPrefix", "value": "/"})
    return (1 if path.get("type") == "Exact" else 0, len(path.get("value", "/")), len(match.get("headers", [])))


class RoutingTable:
    """The cluster's routing objects at one moment, and what they make of a request."""

    def __init__(self, objects: dict[str, list[dict]]) -> None:
        self.objects = objects

    def _of(self, kind: str) -> list[dict]:
        return self.objects.get(kind, [])

    def _find(self, kind: str, namespace: str | None, name: str) -> dict | None:
        return next((o for o in self._of(kind) if o["metadata"]["name"] == name
                     and (namespace is None or o["metadata"].get("namespace") == namespace)), None)

    def _listeners(self, route: dict, host: str) -> list[dict]:
        """The listeners of the route's parent Gateways that take this host and admit the route's namespace."""
        namespace = route["metadata"]["namespace"]
        found = []
        for ref in route["spec"].get("parentRefs", []):
            gateway = self._find("Gateway", ref.get("namespace", namespace), ref["name"])
            for listener in (gateway or {}).get("spec", {}).get("listeners", []):
                if ref.get("sectionName") not in (None, listener["name"]):
                    continue
                if listener.get("hostname") and not _host_matches(listener["hostname"], host):
                    continue
                if self._admits(gateway, listener, namespace):
                    found.append(listener)
        return found

    def _admits(self, gateway: dict, listener: dict, namespace: str) -> bool:
        allowed = listener.get("allowedRoutes", {}).get("namespaces", {"from": "Same"})
        origin = allowed.get("from", "Same")
        if origin == "All":
            return True
        if origin == "Same":
            return namespace == gateway["metadata"]["namespace"]
        labels = (self._find("Namespace", None, namespace) or {}).get("metadata", {}).get("labels", {})
        wanted = allowed.get("selector", {}).get("matchLabels", {})
        return all(labels.get(key) == value for key, value in wanted.items())

    def resolve(self, method: str, host: str, path: str, headers: dict[str, str]) -> Target:
        host = host.split(":")[0].lower()
        candidates = []
        for route in self._of("HTTPRoute"):
            hostnames = route["spec"].get("hostnames", [])
            if hostnames and not any(_host_matches(h, host) for h in hostnames):
                continue
            if not self._listeners(route, host):
                continue
            for rule in route["spec"].get("rules", []):
                for match in rule.get("matches", [{}]):
                    if match.get("method", method) == method and _path_matches(match, path) \
                            and _headers_match(match, headers):
                        candidates.append((_precedence(match), route, rule, match))
        if not candidates:
            raise Refusal(404, f"no HTTPRoute rule matches host {host!r} and path {path!r}")
        _, route, rule, match = max(candidates, key=lambda c: c[0])
        upstream_path, extra = self._filtered(rule, match, path)
        return self._backend(route, rule, upstream_path, extra)

    @staticmethod
    def _filtered(rule: dict, match: dict, path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        extra: list[tuple[str, str]] = []
        for step in rule.get("filters", []):
            if step["type"] == "URLRewrite":
                rewrite = step["urlRewrite"].get("path", {})
                if rewrite.get("type") == "ReplaceFullPath":
                    path = rewrite["replaceFullPath"]
                elif rewrite.get("type") == "ReplacePrefixMatch":
                    prefix = match.get("path", {}).get("value", "/").rstrip("/")
                    path = rewrite["replacePrefixMatch"].rstrip("/") + path[len(prefix):]
            elif step["type"] == "RequestHeaderModifier":
                modifier = step["requestHeaderModifier"]
                extra += [(h["name"], h["value"]) for h in modifier.get("set", []) + modifier.get("add", [])]
            else:
                raise Refusal(500, f"filter {step['type']} is not implemented by the local gateway")
        return path or "/", tuple(extra)

    def _backend(self, route: dict, rule: dict, path: str, extra: tuple[tuple[str, str], ...]) -> Target:
        refs = [r for r in rule.get("backendRefs", []) if r.get("weight", 1) > 0]
        if not refs:
            raise Refusal(500, f"HTTPRoute {route['metadata']['name']}: the matching rule has no backend")
        ref = random.choices(refs, weights=[r.get("weight", 1) for r in refs])[0]
        if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
            raise Refusal(500, f"backend kind {ref.get('kind')} is not implemented by the local gateway "
                               "(Services only)")
        namespace = ref.get("namespace", route["metadata"]["namespace"])
        pods = self._ready_pods(namespace, ref["name"])
        if not pods:
            raise Refusal(503, f"no ready replica behind Service {namespace}/{ref['name']}: it is scaled to zero "
                               "or still starting")
        pod = random.choice(pods)
        labels = pod["metadata"].get("labels", {})
        return Target(labels.get("llmplane.dev/model", ""), _served_names(pod), path,
                      f"{namespace}/{pod['metadata']['name']}", extra)

    def _ready_pods(self, namespace: str, service: str) -> list[dict]:
        pods = []
        for endpoint_slice in self._of("EndpointSlice"):
            meta = endpoint_slice["metadata"]
            if meta.get("namespace") != namespace or \
                    meta.get("labels", {}).get("kubernetes.io/service-name") != service:
                continue
            for endpoint in endpoint_slice.get("endpoints") or []:
                ref = endpoint.get("targetRef", {})
                if endpoint.get("conditions", {}).get("ready") is False or ref.get("kind") != "Pod":
                    continue
                pod = self._find("Pod", namespace, ref["name"])
                if pod:
                    pods.append(pod)
        return pods


def _values_after(args: list[str], flag: str) -> list[str]:
    """The values given after `flag`, up to the next option."""
    if flag not in args:
        return []
    values = []
    for arg in args[args.index(flag) + 1:]:
        if arg.startswith("--"):
            break
        values.append(arg)
    return values


def _served_names(pod: dict) -> tuple[str, ...]:
    """The names the pod's engine answers to: its `--served-model-name` values, then the names of its
    `--lora-modules` (`<name>=<folder>`), which vLLM serves as models of their own."""
    args = pod["spec"]["containers"][0].get("args", [])
    adapters = [module.split("=", 1)[0] for module in _values_after(args, "--lora-modules")]
    return (*_values_after(args, "--served-model-name"), *(f"{LORA_PREFIX}{name}" for name in adapters))


class ClusterReader:
    """The cluster's RoutingTable as of at most REFRESH_S ago, read from the API server when a request needs it:
    an idle gateway runs no kubectl at all."""

    def __init__(self, kubectl: str, kubeconfig: Path) -> None:
        self.kubectl, self.kubeconfig = kubectl, kubeconfig
        self._table, self._read_at = RoutingTable({}), float("-inf")
        self._lock = threading.Lock()

    def _list(self, kinds: str) -> list[dict]:
        done = subprocess.run([self.kubectl, f"--kubeconfig={self.kubeconfig}", "get", kinds, "-A", "-o", "json"],
                              capture_output=True, text=True, timeout=30, check=False)
        return json.loads(done.stdout)["items"] if done.returncode == 0 else []

    @property
    def table(self) -> RoutingTable:
        with self._lock:
            if time.monotonic() - self._read_at >= REFRESH_S:
                objects: dict[str, list[dict]] = {}
                for kinds in (_CORE_KINDS, *_ROUTE_KINDS):
                    for item in self._list(kinds):
                        objects.setdefault(item["kind"], []).append(item)
                self._table, self._read_at = RoutingTable(objects), time.monotonic()
            return self._table


def serve(reader: ClusterReader, simulators: dict[str, int], port: int) -> ThreadingHTTPServer:
    """The gateway on 127.0.0.1:`port`, sending each model's pods to its simulator's port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def _forward(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))) if method == "POST" else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                target = reader.table.resolve(method, headers.get("host", ""), self.path, headers)
                if target.model not in simulators:
                    raise Refusal(502, f"pod {target.pod} has model {target.model!r}, which nothing simulates")
            except Refusal as refusal:
                self._reply(refusal.status, json.dumps({"error": {"message": str(refusal),
                                                                  "code": refusal.status}}).encode(), "")
                return
            request = urllib.request.Request(
                f"http://{LOOPBACK}:{simulators[target.model]}{target.path}", data=body, method=method,
                headers={"Content-Type": headers.get("content-type", "application/json"),
                         SERVED_NAMES_HEADER: ",".join(target.served_names), **dict(target.headers)})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    self._reply(response.status, response.read(), target.pod)
            except urllib.error.HTTPError as error:
                self._reply(error.code, error.read(), target.pod)

        def _reply(self, status: int, body: bytes, pod: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if pod:
                self.send_header(ENDPOINT_HEADER, pod)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Each request is answered; nothing to log."""

    server = ThreadingHTTPServer((LOOPBACK, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmplane.toolchain.local_gateway",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--simulator", action="append", default=[], metavar="MODEL=PORT",
                        help="the simulator port that answers for a model's pods")
    args = parser.parse_args(argv)
    simulators = {model: int(port) for model, port in (s.split("=", 1) for s in args.simulator)}
    server = serve(ClusterReader(args.kubectl, args.kubeconfig), simulators, args.port)
    try:
        threading.Event().wait()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
