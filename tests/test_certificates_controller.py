"""cert-manager's own controllers issue the on-prem cluster's certificates from prod's planned objects (issue 24).

cert-manager v1.21.2 (the chart's pin), built from its Go module, runs against an embedded API server with its CRDs
(deploy/crds/, the specs the chart's crd-*.yaml templates install) and applies prod's onprem-dc1 objects for real:
the self-signed root ClusterIssuer `llmplane-selfsigned`, the root CA Certificate it signs into cert-manager's
namespace, the CA ClusterIssuer `llmplane-ca` that reads it, and the Gateway's Certificate (CertManagerInstall and
GatewayCertificate, components/gateway/certificates.py). onprem-dc1 is the one shipped cluster on the private-CA
path (`gateway.tlsIssuer` onprem: private-ca); the clouds' ACME DNS-01 issuer needs Let's Encrypt and the cloud's
DNS and stays documented, not run. The test reads back what the controllers wrote: the issuers' and certificates'
Ready conditions and the Secret the Gateway's listeners reference, whose certificate is checked with `cryptography`
against the planned Gateway's hostnames and the CA.

What differs from a cluster, and why:
- The controllers run from toolchain/go/cert-manager-controller, our runner of v1.21.2's controller packages, not
  from upstream's binary: cmd/controller is the module github.com/cert-manager/cert-manager/controller-binary, which
  builds only inside its repository (its go.mod: `replace github.com/cert-manager/cert-manager => ../../`) and is
  not on the Go module proxy. The runner builds the controller context as cmd/controller/app/controller.go does
  (pkg/controller.NewContextFactory with the defaults of internal/apis/config/controller/v1alpha1/defaults.go) and
  runs the controllers the private-CA path uses: issuers, clusterissuers, the six certificates-* controllers
  (trigger, key-manager, request-manager, issuing, readiness, revision-manager), certificaterequests-approver and
  the CA and SelfSigned signers. The ACME, Vault and Venafi controllers, the ingress shim and the metrics
  controller are not built in; nothing here would feed them.
- `--cluster-resource-namespace=cert-manager`, the chart's default (templates/deployment.yaml passes
  $(POD_NAMESPACE) when `clusterResourceNamespace` is empty): the CA ClusterIssuer reads the root CA's Secret there.
- No leader election (one controller), and no metrics (0.0.0.0:9402 upstream), healthz (0.0.0.0:9403) or pprof
  server: the runner opens no port at all.
- No webhook: upstream's webhook validates and converts cert-manager's objects, and this API server calls no
  admission webhooks; the CRDs' OpenAPI schemas still validate every object.
- The controller talks to the API server with the cluster's admin kubeconfig, not the chart's RBAC.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from llmplane.stacks.crd_sources import CERT_MANAGER as CERT_MANAGER_CRDS
from llmplane.stacks.crd_sources import crd_documents
from llmplane.stacks.local.embedded_cluster import EmbeddedCluster
from llmplane.stacks.plan import PlannedResource
from llmplane.toolchain import gotools

from tests.gateway_objects import manifest, stream
from tests.planning import plan_of

CLUSTER = "onprem-dc1"
COMPONENTS = ("llmplane:gateway:CertManagerInstall", "llmplane:gateway:GatewayCertificate")
CERT_MANAGER_NAMESPACE = "cert-manager"
GATEWAY_NAMESPACE = "llmplane-gateway"
HOSTNAMES = {"llm.llmplane.dev", "onprem-dc1.llm.llmplane.dev"}
"""The Gateway's listener hostnames in prod's onprem-dc1: the global name and the regional one."""
ISSUED_TIMEOUT_S = 120
SAME_NAMESPACES: dict[str, str] = {}
"""The objects keep their own namespaces: the cluster is the test's alone."""


@dataclass
class Issued:
    cluster: EmbeddedCluster
    log: Path

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict:
        where = ["-n", namespace] if namespace else []
        return json.loads(self.cluster.kubectl("get", kind, name, *where, "-o", "json"))

    def secret_certificate(self, name: str, namespace: str, key: str = "tls.crt") -> x509.Certificate:
        data = self.get("secret", name, namespace)["data"]
        return x509.load_pem_x509_certificate(base64.b64decode(data[key]))


def _planned(plan_resources: list[PlannedResource]) -> list[PlannedResource]:
    """prod's onprem-dc1 objects of cert-manager and the Gateway's certificate (the chart's release aside), and the
    Gateway's namespace."""
    return [r for r in plan_resources
            if r.type.startswith("kubernetes:") and r.type != "kubernetes:helm.sh/v3:Release"
            and f"::{CLUSTER}-" in r.urn
            and (any(f"{token}$" in r.urn for token in COMPONENTS)
                 or (r.type == "kubernetes:core/v1:Namespace" and r.inputs["metadata"]["name"] == GATEWAY_NAMESPACE))]


def _gateway() -> dict:
    [gateway] = [r.inputs for r in plan_of("prod").of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")
                 if f"::{CLUSTER}-" in r.urn]
    return gateway


def _built(name: str) -> Path:
    """The tool, built from the Go module proxy now if it is not yet (a failed build fails the test)."""
    try:
        return gotools.build(gotools.TOOLS[name])
    except (RuntimeError, SystemExit) as exc:
        pytest.fail(f"{name} could not be built: {exc}")


def _ready(item: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in item.get("status", {}).get("conditions", []))


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    binary = _built("cert-manager-controller")
    objects = [manifest(r, SAME_NAMESPACES) for r in _planned(plan_of("prod").resources)]
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("cert-manager") / "cluster")
    cluster.up([], say=lambda _message: None)
    try:
        crds = list(crd_documents(CERT_MANAGER_CRDS))
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=stream(crds))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        *[f"crd/{d['metadata']['name']}" for d in crds])
        cluster.kubectl("apply", "-f", "-", input_text=stream(namespaces))
        cluster.start_process("cert-manager-controller", [
            str(binary), f"--kubeconfig={cluster.kubeconfig}",
            f"--cluster-resource-namespace={CERT_MANAGER_NAMESPACE}"])
        cluster.kubectl("apply", "-f", "-", input_text=stream([o for o in objects if o["kind"] != "Namespace"]))
        found = Issued(cluster, cluster.logs / "cert-manager-controller.log")
        deadline = time.monotonic() + ISSUED_TIMEOUT_S
        while True:
            items = [*json.loads(cluster.kubectl("get", "clusterissuers", "-o", "json"))["items"],
                     *json.loads(cluster.kubectl("get", "certificates", "-A", "-o", "json"))["items"]]
            if len(items) == 4 and all(_ready(item) for item in items):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"cert-manager made not everything Ready in {ISSUED_TIMEOUT_S} s: "
                            f"{json.dumps({i['metadata']['name']: i.get('status') for i in items})[:4000]}\n"
                            f"its log ends:\n{found.log.read_text()[-4000:]}")
            time.sleep(1)
        yield found
    finally:
        cluster.down(say=lambda _message: None)


def test_prod_plans_the_private_ca_objects_for_onprem():
    objects = [manifest(r, SAME_NAMESPACES) for r in _planned(plan_of("prod").resources)]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("Certificate", "llmplane-gateway"), ("Certificate", "llmplane-root-ca"),
        ("ClusterIssuer", "llmplane-ca"), ("ClusterIssuer", "llmplane-selfsigned"),
        ("Namespace", "cert-manager"), ("Namespace", "llmplane-gateway"),
        ("NetworkPolicy", "allow-dns"), ("NetworkPolicy", "cert-manager-cainjector"),
        ("NetworkPolicy", "cert-manager-controller"), ("NetworkPolicy", "cert-manager-startupapicheck"),
        ("NetworkPolicy", "cert-manager-webhook"), ("NetworkPolicy", "default-deny")]


def test_the_self_signed_and_ca_cluster_issuers_are_ready(issued):
    for name in ("llmplane-selfsigned", "llmplane-ca"):
        issuer = issued.get("clusterissuer", name)
        assert _ready(issuer), issuer.get("status")
    ca_ready = next(c for c in issued.get("clusterissuer", "llmplane-ca")["status"]["conditions"]
                    if c["type"] == "Ready")
    assert ca_ready["reason"] == "KeyPairVerified", ca_ready


def test_the_root_ca_is_a_self_signed_ca_in_cert_managers_namespace(issued):
    assert _ready(issued.get("certificate", "llmplane-root-ca", CERT_MANAGER_NAMESPACE))
    root = issued.secret_certificate("llmplane-root-ca", CERT_MANAGER_NAMESPACE)
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "llmplane private CA"
    assert root.issuer == root.subject
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    root.verify_directly_issued_by(root)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"


def test_the_gateways_certificate_is_ready(issued):
    certificate = issued.get("certificate", "llmplane-gateway", GATEWAY_NAMESPACE)
    assert _ready(certificate), certificate.get("status")
    assert certificate["status"]["revision"] == 1


def test_it_writes_the_secret_the_gateway_listeners_reference(issued):
    references = {ref["name"] for listener in _gateway()["spec"]["listeners"]
                  for ref in listener["tls"]["certificateRefs"]}
    certificate = issued.get("certificate", "llmplane-gateway", GATEWAY_NAMESPACE)
    assert references == {certificate["spec"]["secretName"]} == {"llmplane-tls"}
    assert issued.get("secret", "llmplane-tls", GATEWAY_NAMESPACE)["metadata"]["annotations"][
        "cert-manager.io/certificate-name"] == "llmplane-gateway"


def test_the_secret_holds_a_tls_certificate_for_exactly_the_listener_hostnames(issued):
    secret = issued.get("secret", "llmplane-tls", GATEWAY_NAMESPACE)
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    leaf = issued.secret_certificate("llmplane-tls", GATEWAY_NAMESPACE)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == sorted(HOSTNAMES)
    assert names.get_values_for_type(x509.IPAddress) == []
    assert {listener["hostname"] for listener in _gateway()["spec"]["listeners"]} == HOSTNAMES
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_the_certificate_chains_to_the_private_ca(issued):
    root = issued.secret_certificate("llmplane-root-ca", CERT_MANAGER_NAMESPACE)
    leaf = issued.secret_certificate("llmplane-tls", GATEWAY_NAMESPACE)
    assert leaf.issuer == root.subject
    leaf.verify_directly_issued_by(root)  # raises if the CA's key did not sign it
    assert issued.secret_certificate("llmplane-tls", GATEWAY_NAMESPACE, "ca.crt") == root


def test_the_secrets_key_is_the_certificates_own_p256_key(issued):
    data = issued.get("secret", "llmplane-tls", GATEWAY_NAMESPACE)["data"]
    key = serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), password=None)
    leaf = issued.secret_certificate("llmplane-tls", GATEWAY_NAMESPACE)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key() == leaf.public_key()


def _listening_inodes() -> set[str]:
    """Socket inodes in LISTEN state (TCP and TCP6), from /proc/net."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def test_the_controller_listens_on_no_port(issued):
    pid = issued.cluster.running()["cert-manager-controller"]
    sockets = {link.readlink().name[len("socket:["):-1] for link in Path(f"/proc/{pid}/fd").iterdir()
               if link.readlink().name.startswith("socket:[")}
    assert sockets, "the controller holds no socket at all (not even to the API server)"
    assert not sockets & _listening_inodes()


def test_the_controller_runs_the_private_ca_controllers(issued):
    [started] = re.findall(r'"controllers started".* controllers="([^"]*)"', issued.log.read_text())
    assert sorted(started.split(",")) == [
        "certificaterequests-approver", "certificaterequests-issuer-ca", "certificaterequests-issuer-selfsigned",
        "certificates-issuing", "certificates-key-manager", "certificates-readiness",
        "certificates-request-manager", "certificates-revision-manager", "certificates-trigger",
        "clusterissuers", "issuers"]
