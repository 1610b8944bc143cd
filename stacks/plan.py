"""The offline plan: the stack's own program under Pulumi's mock runtime, recorded resource by resource.

No engine, no credentials, no network: `pulumi.runtime.set_mocks` stands in for the engine, and a recording
monitor keeps every registration (URN, type, name, parent, inputs with secrets redacted).
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import struct_pb2
from llmplane.spec import PlatformSpec, load_spec
from llmplane.spec.load import NAMESPACE, SECRETS_KEY
from pulumi import _types as pulumi_types
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.settings import is_dry_run, set_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from .environments import SECRET_PLACEHOLDER, StackConfig
from .program import kubeconfig_keys, main, psk_keys, tenant_keys

SECRET_SIG = rpc._special_secret_sig
SIG_KEY = rpc._special_sig_key
PROJECT = "llmplane"
STACK_TYPE = "pulumi:pulumi:Stack"
UNKNOWN_PLACEHOLDER = "[unknown]"
"""A value only known after the cloud creates something (an id, an endpoint)."""


@dataclass(frozen=True)
class PlannedResource:
    """One registration as the engine would have seen it."""

    urn: str
    type: str
    name: str
    parent: str
    inputs: dict[str, Any]
    protect: bool = False
    """Registered with `protect`: the engine refuses to delete it."""
    dependencies: tuple[str, ...] = ()
    """URNs it waits for, sorted (its `depends_on`, components expanded to their resources), for tests of order."""
    aliases: tuple[str, ...] = ()
    """Earlier URNs the engine takes for this resource: its own aliases and those its parents' aliases give it,
    resolved as the engine resolves them, so a state written under an earlier URN is updated, not replaced."""

    def as_json(self) -> dict[str, Any]:
        """The plan's published JSON shape (issue-defined keys; `protect` is for tests and policies in process)."""
        return {"urn": self.urn, "type": self.type, "name": self.name, "parent": self.parent, "inputs": self.inputs}


@dataclass
class Plan:
    """Everything the program registered, sorted by URN so that two plans of one spec are identical."""

    environment: str
    spec: PlatformSpec
    resources: list[PlannedResource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Things the reader should know, e.g. secrets replaced by placeholders."""

    def of_type(self, type_: str) -> list[PlannedResource]:
        """Resources of one type token."""
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, PlannedResource]:
        return {r.urn: r for r in self.resources}


def redact(value: Any) -> Any:
    """Replace every secret (as the wire encodes it) and every unknown by a placeholder; whole numbers back to
    ints (the wire carries every number as a double)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return SECRET_PLACEHOLDER
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, pulumi.Resource):
        return "[resource]"
    if isinstance(value, Unknown):
        return UNKNOWN_PLACEHOLDER
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _Outputs(pulumi.runtime.Mocks):
    """Fake provider outputs: inputs echoed back, plus the few computed fields components read."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        extra: dict[str, Any] = {
            "aws:eks/cluster:Cluster": {
                "endpoint": f"https://{args.name}.eks.example",
                "certificateAuthority": {"data": "Y2E="},
                "arn": f"arn:aws:eks:::cluster/{args.name}",
            },
            "gcp:container/cluster:Cluster": {"endpoint": "203.0.113.1",
                                              "masterAuth": {"clusterCaCertificate": "Y2E="}},
            "aws:ecr/repository:Repository": {"repositoryUrl": f"123456789012.dkr.ecr.example/{args.name}",
                                              "registryId": "123456789012"},
            "gcp:serviceaccount/account:Account": {"email": f"{args.name}@example.iam.gserviceaccount.com"},
            "gcp:artifactregistry/repository:Repository": {"project": "mock-project"},
            "random:index/randomPassword:RandomPassword": {"result": "mock-generated-key"},
            "aws:ec2/vpnConnection:VpnConnection": {"tunnel1Address": "198.51.100.1",
                                                    "tunnel2Address": "198.51.100.2"},
            "gcp:compute/haVpnGateway:HaVpnGateway": {"vpnInterfaces": [{"id": 0, "ipAddress": "198.51.100.11"},
                                                                        {"id": 1, "ipAddress": "198.51.100.12"}]},
        }.get(args.typ, {})
        if args.typ == "docker-build:index:Image":
            extra = {"ref": _pushed_ref(args.inputs)}
        state.update(extra)
        state.setdefault("arn", f"arn:mock:{args.typ}:{args.name}")
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": {
                "proxyEndpoint": "https://123456789012.dkr.ecr.example", "userName": "AWS", "password": "mock"},
            "gcp:organizations/getClientConfig:getClientConfig": {"accessToken": "mock", "project": "mock-project"},
            "aws:route53/getZone:getZone": {"zoneId": "Z0MOCKZONE", "name": args.args.get("name", "")},
        }.get(args.token, {})


def _pushed_ref(inputs: dict[str, Any]) -> str:
    """What docker-build reports after a push: the first tag plus a digest (derived from the tag here)."""
    tags = inputs.get("tags")
    tag = tags[0] if isinstance(tags, list) and tags else "unknown"
    return f"{tag}@sha256:{hashlib.sha256(str(tag).encode()).hexdigest()}"


class _NotPlain(Exception):
    """A value only the SDK's serializer knows how to send (a resource reference, an asset, an archive...)."""


def _wire(value: Any) -> Any:
    """A deserialized value as `rpc.serialize_property` sends it back (plain values as they are, unknowns as the
    sentinel); anything else raises _NotPlain so that the SDK's serializer handles it."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or kind is float or value is None:
        return value
    if kind is dict:
        return {key: _wire(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_wire(item) for item in value]
    if kind is Unknown:
        return rpc.UNKNOWN
    raise _NotPlain


def _state_struct(state: dict[str, Any]) -> struct_pb2.Struct:
    """`rpc.serialize_properties(state, {})` for a mock's state: the same Struct, without a round through the
    event loop from the monitor's thread when every value is plain."""
    try:
        wire = {key: _wire(item) for key, item in state.items()}
    except _NotPlain:
        return _sync_await(rpc.serialize_properties(state, {}))
    struct = struct_pb2.Struct()
    struct.update({key: item for key, item in wire.items() if item is not None})  # None: an absent property
    return struct


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, keeping each registration with its parent and raw (secret-marked) inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks, sink: list[PlannedResource], stack: str,
                 project: str = PROJECT):
        super().__init__(mocks)
        self.sink = sink
        self.stack = stack
        self.project = project
        self.aliases: dict[str, tuple[str, ...]] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """URNs as the engine writes them for this stack (the SDK's default reads settings that its worker
        threads do not see)."""
        parent_type = parent.split("::")[2] if parent else STACK_TYPE
        if parent_type != STACK_TYPE:  # a parent's whole type chain, the stack adding nothing, as in the engine
            type_ = parent_type + "$" + type_
        return f"urn:pulumi:{self.stack}::{self.project}::{type_}::{name}"

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        """`MockMonitor.RegisterResource`, step for step, with the inputs deserialized once for the mocks and the
        record (in a preview the SDK keeps unknowns in both) and the state sent back without `_sync_await`."""
        if request.type == STACK_TYPE:
            return super().RegisterResource(request)
        _ensure_event_loop()  # deserializing a resource reference needs a loop on this thread
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        args = pulumi_mocks.MockResourceArgs(
            typ=request.type, name=request.name,
            inputs=inputs if is_dry_run() else rpc.deserialize_properties(request.object),
            provider=request.provider, resource_id=request.importId, custom=request.custom or False,
            transforms=pulumi_mocks._resolve_callbacks(request.transforms))
        id_, state = self.mocks.new_resource(args)
        obj = _state_struct(state)
        urn = self.make_urn(request.parent, request.type, request.name)
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        self.aliases[urn] = self._alias_urns(request)
        self.sink.append(PlannedResource(urn, request.type, request.name, request.parent, redact(inputs),
                                         bool(request.protect), tuple(sorted(request.dependencies)),
                                         self.aliases[urn]))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj)

    def _alias_urns(self, request) -> tuple[str, ...]:
        """The registration's alias specs as URNs, and one under each alias of its parent (the engine's inherited
        child aliases): what a state written before a re-parenting is matched against."""
        found = []
        for alias in request.aliases:
            if alias.urn:
                found.append(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            found.append(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        found += [self.make_urn(parent_alias, request.type, request.name)
                  for parent_alias in self.aliases.get(request.parent, ())]
        return tuple(sorted(set(found)))


def _with_secret_placeholders(config: StackConfig, spec: PlatformSpec, notes: list[str]):
    """Secrets are never readable offline: stand in a placeholder for each secret the spec needs."""
    key = f"{NAMESPACE}:{SECRETS_KEY}"
    needed = ["vllmApiKey", *kubeconfig_keys(spec), *psk_keys(spec), *tenant_keys(spec)]
    values = dict(config.values)
    present = json.loads(values[key]) if key in values else {}
    missing = [name for name in needed if name not in present]
    if missing:
        notes.append("secrets not set in the environment file, placeholders used: "
                     + ", ".join(f"{key}.{name}" for name in missing))
    values[key] = json.dumps({**{name: SECRET_PLACEHOLDER for name in needed}, **present})
    return values, sorted({*config.secret_keys, key})


class DuplicateUrnError(RuntimeError):
    """Two resources of one plan share a URN: a spec rule is missing (a duplicate the validation let through)."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a program registers its resources: nearly every object a plan
    allocates lives until the plan ends, so each full collection walks the whole (growing) heap for nothing; the
    collector's previous state comes back afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


MEMOIZED_TYPE_FUNCTIONS = ("unwrap_type", "unwrap_optional_type", "resource_types", "resource_pulumi_to_py_names",
                           "input_type_py_to_pulumi_names", "input_type_types")
"""`pulumi._types` functions of a class or annotation alone, remembered while a program runs under the mocks."""


def _memoized(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`function` of a type annotation, remembered per annotation (an unhashable one is computed each time)."""
    known: dict[Any, Any] = {}

    def cached(annotation: Any) -> Any:
        try:
            return known[annotation]
        except KeyError:
            result = known[annotation] = function(annotation)
            return result
        except TypeError:
            return function(annotation)

    return cached


@contextmanager
def sdk_shortcuts() -> Iterator[None]:
    """Two things the SDK repeats for every resource, skipped or remembered while the mock monitor runs a program
    (measured on `plan prod`, 741 resources; benchmarks/plan_scaling.py):

    - its stack capture: for every registration it walks the whole Python stack (`traceback.extract_stack`, a
      `linecache` stat and a `file://` URI per frame) for the engine's source positions, which the mock monitor never
      reads and the plan never records; the components' deep stacks made it ~10% of the plan;
    - its reading of type annotations: `unwrap_type` (Output[T], Input[T], Optional[T] down to T) runs for every
      property of every typed input again (19,660 calls, ~5% of the plan), and the name and type tables of every
      resource class and input type are rebuilt for every instance (`resource_types`...); all are pure functions of
      the class or annotation, remembered here (the tables are only read by their callers).

    The SDK's own functions come back afterwards."""
    captured = pulumi_resource._get_stack_trace
    originals = {name: getattr(pulumi_types, name) for name in MEMOIZED_TYPE_FUNCTIONS}
    pulumi_resource._get_stack_trace = source_pb2.StackTrace
    for name, function in originals.items():
        setattr(pulumi_types, name, _memoized(function))
    try:
        yield
    finally:
        pulumi_resource._get_stack_trace = captured
        for name, function in originals.items():
            setattr(pulumi_types, name, function)


def record_program(program: Callable[[], None], project: str, stack: str, values: dict[str, str],
                   secret_keys: list[str] | None = None) -> list[PlannedResource]:
    """Run any Pulumi program under the mock runtime with these config values; every registration, sorted by
    URN. The offline plan runs the stack's program so; tests run the examples so."""
    resources: list[PlannedResource] = []
    monitor = _RecordingMonitor(_Outputs(), resources, stack, project)
    set_root_resource(None)
    pulumi_mocks.set_mocks(monitor.mocks, project=project, stack=stack, preview=True, monitor=monitor)
    set_all_config(values, secret_keys or [])
    with collector_paused(), sdk_shortcuts():
        _sync_await(run_pulumi_func(program))
    return sorted(resources, key=lambda r: r.urn)


def run_plan(config: StackConfig, program: Callable[[], None] | None = None) -> Plan:
    """Validate, then run the program under mocks; SpecError propagates before anything is registered."""
    spec = load_spec(config.values, config.environment)
    plan = Plan(config.environment, spec)
    values, secret_keys = _with_secret_placeholders(config, spec, plan.notes)
    plan.resources.extend(record_program(program or main, PROJECT, config.environment, values, secret_keys))
    duplicates = sorted(urn for urn, count in Counter(r.urn for r in plan.resources).items() if count > 1)
    if duplicates:
        raise DuplicateUrnError(f"the plan of '{config.environment}' registers these URNs more than once, which the "
                                f"engine would refuse: {', '.join(duplicates)}")
    return plan
