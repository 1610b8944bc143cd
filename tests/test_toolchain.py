"""The offline toolchain without the engine: the render provider's RPCs
called directly, and the small pure helpers around the language host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime.proto import language_pb2, provider_pb2

from toolchain.k8s_render_provider import RenderProvider
from toolchain.language_host import VirtualenvMissing, python_for
from toolchain.manifest_files import REDACTED
from toolchain.plugin_server import engine_address
from toolchain.program_runner import program_traceback
from toolchain.summary import describe_changes, describe_manifests
from toolchain.wire_values import SECRET_SIG, SIG_KEY, UNKNOWN

DIFF = provider_pb2.DiffResponse
PROP = provider_pb2.PropertyDiff
URN = "urn:pulumi:local::llmplane::kubernetes:apps/v1:Deployment::vllm"


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code


class FakeContext:
    """Just enough of grpc.ServicerContext for the provider."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(value)
    return result


def secret(value: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "value": value}


def deployment(**changes: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vllm", "namespace": "llm", "labels": {"app.kubernetes.io/name": "vllm"}},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [
                {"name": "vllm", "image": "vllm/vllm-openai:v0.6.0",
                 "resources": {"limits": {"nvidia.com/gpu": 1}}},
            ]}},
        },
    }
    obj.update(changes)
    return obj


@pytest.fixture
def warnings() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def provider(tmp_path: Path, warnings: list[tuple[str, str]]) -> RenderProvider:
    provider = RenderProvider(warn=lambda urn, message: warnings.append((urn, message)))
    provider.Configure(provider_pb2.ConfigureRequest(args=struct({"renderYamlToDirectory": str(tmp_path)})), FakeContext())
    return provider


def create(provider: RenderProvider, obj: dict[str, Any], preview: bool = False) -> provider_pb2.CreateResponse:
    return provider.Create(provider_pb2.CreateRequest(urn=URN, properties=struct(obj), preview=preview), FakeContext())


def diff(provider: RenderProvider, old: dict[str, Any], new: dict[str, Any]) -> provider_pb2.DiffResponse:
    request = provider_pb2.DiffRequest(urn=URN, olds=struct(old), old_inputs=struct(old), news=struct(new))
    return provider.Diff(request, FakeContext())


# --- Configure -------------------------------------------------------------

def test_configure_without_render_directory_names_the_real_provider() -> None:
    with pytest.raises(Aborted) as aborted:
        RenderProvider(warn=print).Configure(
            provider_pb2.ConfigureRequest(args=struct({"kubeconfig": "~/.kube/config"})), FakeContext())
    assert aborted.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "pulumi plugin install resource kubernetes v4.34.2" in str(aborted.value)


def test_configure_accepts_secrets_and_previews(tmp_path: Path) -> None:
    response = RenderProvider(warn=print).Configure(
        provider_pb2.ConfigureRequest(variables={"kubernetes:config:renderYamlToDirectory": str(tmp_path)}),
        FakeContext())
    assert response.acceptSecrets and response.supportsPreview


def test_diff_config_replaces_when_the_render_directory_moves(provider: RenderProvider) -> None:
    response = provider.DiffConfig(provider_pb2.DiffRequest(
        olds=struct({"renderYamlToDirectory": "a", "version": "4.34.2"}),
        news=struct({"renderYamlToDirectory": "b", "version": "4.34.2"})), FakeContext())
    assert response.changes == DIFF.DIFF_SOME
    assert list(response.replaces) == ["renderYamlToDirectory"]


# --- Check -----------------------------------------------------------------

def test_check_returns_inputs_unchanged(provider: RenderProvider) -> None:
    news = struct(deployment())
    response = provider.Check(provider_pb2.CheckRequest(urn=URN, news=news), FakeContext())
    assert response.inputs == news
    assert not response.failures


def test_check_requires_a_name(provider: RenderProvider) -> None:
    response = provider.Check(
        provider_pb2.CheckRequest(urn=URN, news=struct(deployment(metadata={"namespace": "llm"}))), FakeContext())
    assert [f.property for f in response.failures] == ["metadata.name"]
    assert "does not auto-name" in response.failures[0].reason


def test_check_allows_a_name_not_known_in_preview(provider: RenderProvider) -> None:
    response = provider.Check(
        provider_pb2.CheckRequest(urn=URN, news=struct(deployment(metadata=UNKNOWN))), FakeContext())
    assert not response.failures


# --- Diff ------------------------------------------------------------------

def test_diff_of_equal_objects_is_none(provider: RenderProvider) -> None:
    assert diff(provider, deployment(), deployment()).changes == DIFF.DIFF_NONE


def test_diff_lists_changed_paths_as_updates(provider: RenderProvider) -> None:
    new = deployment()
    new["spec"]["replicas"] = 2
    new["metadata"]["labels"]["app.kubernetes.io/name"] = "other"
    response = diff(provider, deployment(), new)
    assert response.changes == DIFF.DIFF_SOME
    assert list(response.diffs) == ["metadata", "spec"]
    assert not response.replaces
    assert response.hasDetailedDiff
    assert {k: v.kind for k, v in response.detailedDiff.items()} == {
        "spec.replicas": PROP.UPDATE,
        'metadata.labels["app.kubernetes.io/name"]': PROP.UPDATE,
    }


@pytest.mark.parametrize("field, value", [
    ("name", "vllm-2"),
    ("namespace", "other"),
])
def test_diff_replaces_when_identity_changes(provider: RenderProvider, field: str, value: str) -> None:
    new = deployment()
    new["metadata"][field] = value
    response = diff(provider, deployment(), new)
    assert list(response.replaces) == ["metadata"]
    assert response.detailedDiff[f"metadata.{field}"].kind == PROP.UPDATE_REPLACE


def test_diff_replaces_when_kind_changes(provider: RenderProvider) -> None:
    response = diff(provider, deployment(), deployment(kind="StatefulSet"))
    assert list(response.replaces) == ["kind"]


def test_diff_compares_a_secret_as_one_value(provider: RenderProvider) -> None:
    old = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": secret("a")}}
    new = {**old, "stringData": {"k": secret("b")}}
    response = diff(provider, old, new)
    assert list(response.detailedDiff) == ["stringData.k"]


def test_diff_marks_added_and_removed_keys(provider: RenderProvider) -> None:
    old = deployment()
    new = deployment()
    del new["metadata"]["labels"]
    new["metadata"]["annotations"] = {"a": "b"}
    kinds = {k: v.kind for k, v in diff(provider, old, new).detailedDiff.items()}
    assert kinds == {"metadata.labels": PROP.DELETE, "metadata.annotations": PROP.ADD}


# --- Create / Update / Read / Delete ---------------------------------------

def test_create_writes_the_object_where_the_real_provider_would(provider: RenderProvider, tmp_path: Path) -> None:
    response = create(provider, deployment())
    path = tmp_path / "1-manifest" / "apps_v1-deployment-llm-vllm.yaml"
    assert response.id == "llm/vllm"
    written = yaml.safe_load(path.read_text())
    assert written["spec"]["replicas"] == 1 and isinstance(written["spec"]["replicas"], int)
    assert written["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert response.properties == struct(deployment())


def test_cluster_scoped_objects_and_crds(provider: RenderProvider, tmp_path: Path) -> None:
    namespace = create(provider, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "LLM"}})
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "scaledobjects.keda.sh"}}
    create(provider, crd)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:x"}}
    create(provider, role)
    assert namespace.id == "LLM"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml")) == [
        "0-crd/apiextensions.k8s.io_v1-customresourcedefinition-cluster-scaledobjects.keda.sh.yaml",
        "1-manifest/rbac.authorization.k8s.io_v1-clusterrole-cluster-system_x.yaml",
        "1-manifest/v1-namespace-cluster-llm.yaml",
    ]


def test_preview_writes_nothing(provider: RenderProvider, tmp_path: Path) -> None:
    response = create(provider, deployment(metadata={"name": UNKNOWN}), preview=True)
    assert response.id == ""
    assert not list(tmp_path.rglob("*"))


def test_update_rewrites_and_delete_removes(provider: RenderProvider, tmp_path: Path) -> None:
    create(provider, deployment())
    new = deployment()
    new["spec"]["replicas"] = 3
    provider.Update(provider_pb2.UpdateRequest(urn=URN, id="llm/vllm", olds=struct(deployment()), news=struct(new)),
                    FakeContext())
    path = tmp_path / "1-manifest" / "apps_v1-deployment-llm-vllm.yaml"
    assert yaml.safe_load(path.read_text())["spec"]["replicas"] == 3
    provider.Delete(provider_pb2.DeleteRequest(urn=URN, id="llm/vllm", properties=struct(new)), FakeContext())
    assert not path.exists()


def test_read_reports_a_removed_file_as_gone(provider: RenderProvider, tmp_path: Path) -> None:
    create(provider, deployment())
    request = provider_pb2.ReadRequest(urn=URN, id="llm/vllm", properties=struct(deployment()))
    assert provider.Read(request, FakeContext()).id == "llm/vllm"
    (tmp_path / "1-manifest" / "apps_v1-deployment-llm-vllm.yaml").unlink()
    assert provider.Read(request, FakeContext()).id == ""


# --- Secrets never reach a file --------------------------------------------

def test_kubernetes_secret_keeps_keys_and_hides_values(
    provider: RenderProvider, tmp_path: Path, warnings: list[tuple[str, str]]
) -> None:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf", "namespace": "llm"},
           "stringData": {"token": "plain-value"}, "data": secret({"api-key": "c2VjcmV0"})}
    create(provider, obj)
    text = (tmp_path / "1-manifest" / "v1-secret-llm-hf.yaml").read_text()
    written = yaml.safe_load(text)
    assert written["stringData"] == {"token": REDACTED}
    assert written["data"] == {"api-key": REDACTED}
    assert "plain-value" not in text and "c2VjcmV0" not in text
    assert len(warnings) == 1
    urn, message = warnings[0]
    assert urn == URN and 'stringData.token' in message and 'data["api-key"]' in message


def test_secret_values_inside_other_objects_are_redacted(
    provider: RenderProvider, tmp_path: Path, warnings: list[tuple[str, str]]
) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "llm"},
           "data": {"plain": "ok", "password": secret("hunter2")}}
    create(provider, obj)
    text = (tmp_path / "1-manifest" / "v1-configmap-llm-conf.yaml").read_text()
    assert "hunter2" not in text
    assert yaml.safe_load(text)["data"] == {"plain": "ok", "password": REDACTED}
    assert "data.password" in warnings[0][1]


def test_objects_without_secrets_warn_nothing(provider: RenderProvider, warnings: list[tuple[str, str]]) -> None:
    create(provider, deployment())
    assert warnings == []


# --- Language host and helpers ---------------------------------------------

def test_engine_address_is_the_last_positional_argument() -> None:
    assert engine_address(["--logtostderr", "-v=9", "--tracing", "file:/t", "127.0.0.1:4000"]) == "127.0.0.1:4000"


def test_missing_virtualenv_is_explained(tmp_path: Path) -> None:
    options = struct({"virtualenv": ".venv"})
    info = language_pb2.ProgramInfo(root_directory=str(tmp_path), options=options)
    with pytest.raises(VirtualenvMissing, match="make up"):
        python_for(info)


def test_no_virtualenv_option_means_this_interpreter() -> None:
    import sys

    assert python_for(language_pb2.ProgramInfo(root_directory="/")) == sys.executable


def test_program_traceback_starts_at_the_program(tmp_path: Path) -> None:
    import runpy

    program = tmp_path / "__main__.py"
    program.write_text("def boom():\n    1 / 0\nboom()\n")
    try:
        runpy.run_path(str(tmp_path), run_name="__main__")
    except ZeroDivisionError as exn:
        text = program_traceback(exn)
    assert "test_toolchain.py" not in text and "runpy" not in text
    assert str(program) in text and "ZeroDivisionError" in text


def test_summary_wording(tmp_path: Path) -> None:
    assert describe_changes({"same": 3, "create": 2, "refresh": 1}) == "2 created, 3 unchanged, 1 refresh"
    assert describe_changes({}) == "nothing"
    (tmp_path / "1-manifest").mkdir()
    (tmp_path / "1-manifest" / "a.yaml").write_text("")
    assert describe_manifests(tmp_path) == f"1 file in {tmp_path}/ (1-manifest: 1)"
