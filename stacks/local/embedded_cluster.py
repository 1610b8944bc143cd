"""A real Kubernetes control plane on 127.0.0.1 with KWOK fake GPU nodes.

The way controller-runtime's envtest does it: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler run as plain processes, with TLS
from a generated CA, RBAC on and the data under one state folder. KWOK plays
the kubelets of fake nodes shaped like the environment's GPU pools (GPU-type
label, `nvidia.com/gpu` capacity, the GPU taint), so pods are scheduled,
admitted and marked Running without a container runtime or a GPU.

`up` starts what is not running and is idempotent; `down` stops every process
it started, by pid, and leaves nothing running; `status` says what runs and
where the kubeconfig is. Every process listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmplane.facts.kubernetes import GPU_RESOURCE, GPU_TAINT_KEY, GPU_TYPE_LABEL, POOL_LABEL
from llmplane.toolchain import gotools

from . import pki

SERVICE_RANGE = "10.96.0.0/16"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 15
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ClusterError(RuntimeError):
    """The embedded cluster could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class FakeNode:
    """One KWOK node: a GPU machine of a pool."""

    name: str
    pool: str
    gpu_type: str
    gpus: int
    cpu: int = 64
    memory_gi: int = 512
    ephemeral_storage_gi: int = 2000
    zone: str = "workstation-a"

    def manifest(self) -> dict:
        capacity = {"cpu": str(self.cpu), "memory": f"{self.memory_gi}Gi", "pods": "110",
                    "ephemeral-storage": f"{self.ephemeral_storage_gi}Gi", GPU_RESOURCE: str(self.gpus)}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "annotations": {FAKE_NODE_ANNOTATION: "fake"},
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    "topology.kubernetes.io/zone": self.zone,
                    GPU_TYPE_LABEL: self.gpu_type,
                    POOL_LABEL: self.pool,
                },
            },
            "spec": {"taints": [{"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}]},
            "status": {"capacity": capacity, "allocatable": capacity},
        }


@dataclass
class ClusterState:
    """What `up` recorded: ports, pids and each process's command line, read back by `status` and `down` (and by
    the test that every program the local stack launches is one `make up` installs)."""

    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process still answers kill(0)
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


# KWOK stages, written for this project: nodes become Ready keeping the
# capacity they were created with; pods that are bound become Running and
# Ready; pods being deleted are removed.
_NODE_STAGE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: llmplane-node-ready}
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: '.status.phase', operator: NotIn, values: [Running]}
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      conditions:
      {{ range NodeConditions }}
      - {type: {{ .type | Quote }}, status: {{ .status | Quote }}, reason: {{ .reason | Quote }},
         message: {{ .message | Quote }}, lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
      {{ end }}
      addresses:
      - {type: InternalIP, address: {{ NodeIP | Quote }}}
      - {type: Hostname, address: {{ NodeName | Quote }}}
      capacity:
      {{ YAML .status.capacity 1 }}
      allocatable:
      {{ YAML .status.allocatable 1 }}
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
        containerRuntimeVersion: {{ printf "kwok-%s" Version | Quote }}
"""

_POD_STAGES = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: llmplane-pod-running}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.status.phase', operator: In, values: [Pending]}
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      startTime: {{ $now | Quote }}
      conditions:
      - {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - {name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: true, started: true, restartCount: 0,
         state: {running: {startedAt: {{ $now | Quote }}}}}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - {name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: true, restartCount: 0,
         state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }},
                              finishedAt: {{ $now | Quote }}}}}
      {{ end }}
      {{ with PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      podIP: {{ . | Quote }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: llmplane-pod-delete}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: Exists}
  next:
    delete: true
"""


class EmbeddedCluster:
    """The control plane and fake nodes of one state folder (`.state/cluster` for `make up`)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir.resolve()
        self.pki = self.dir / "pki"
        self.logs = self.dir / "logs"
        self.state_file = self.dir / "cluster.json"
        self.kubeconfig = self.dir / "kubeconfig"

    # -- state ---------------------------------------------------------------------------------------------------

    def _read_state(self) -> ClusterState:
        if not self.state_file.exists():
            return ClusterState()
        data = json.loads(self.state_file.read_text())
        return ClusterState(ports=data.get("ports", {}), pids=data.get("pids", {}),
                            commands=data.get("commands", {}))

    def _write_state(self, state: ClusterState) -> None:
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")

    def running(self) -> dict[str, int]:
        """Processes of this cluster that are alive, by name."""
        return {name: pid for name, pid in self._read_state().pids.items() if _alive(pid)}

    def commands(self) -> dict[str, list[str]]:
        """The command line each process of this cluster was started with, by name."""
        return dict(self._read_state().commands)

    def api_url(self) -> str | None:
        port = self._read_state().ports.get("kube-apiserver")
        return f"https://127.0.0.1:{port}" if port else None

    # -- up ------------------------------------------------------------------------------------------------------

    def up(self, nodes: list[FakeNode], say=print) -> None:
        """Start whatever is not running, then make the fake nodes match `nodes`."""
        binaries = gotools.build_many(["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                       "kubectl", "kwok"])
        self.kubectl_bin = binaries["kubectl"]
        alive = self.running()
        if set(CONTROL_PLANE) <= set(alive):
            say(f"cluster: already running ({self.api_url()})")
        else:
            if alive:  # a half-running cluster (e.g. after a crash): restart it cleanly, keeping the data
                say(f"cluster: restarting (only {', '.join(sorted(alive))} running)")
                self.down(say=lambda _m: None)
            self._start(binaries, say)
        self._apply_nodes(nodes)
        say(f"cluster: {len(nodes)} fake GPU node(s) from the environment's pools; kubeconfig: {self.kubeconfig}")

    def _start(self, binaries: dict[str, Path], say) -> None:
        for folder in (self.dir, self.pki, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        # The API server keeps its port across restarts, so kubeconfigs and a stack's provider stay valid.
        api_port = self._read_state().ports.get("kube-apiserver") or _free_port()
        if not _port_free(api_port):
            raise ClusterError(f"port {api_port} of this cluster's API server is taken by another process; stop "
                               f"it, or remove {self.dir} to start a new cluster on another port")
        state = ClusterState(ports={**self._read_state().ports,
                                    **{name: _free_port() for name in
                                       ("etcd", "etcd-peer", "kube-controller-manager", "kube-scheduler", "kwok")}})
        state.ports["kube-apiserver"] = api_port
        creds = self._credentials(state.ports["kube-apiserver"])
        started = time.monotonic()

        def launch(name: str, argv: list[str]) -> None:
            log = (self.logs / f"{name}.log").open("ab")
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.dir, start_new_session=True)
            state.pids[name] = proc.pid
            state.commands[name] = argv
            self._write_state(state)

        etcd, peer = state.ports["etcd"], state.ports["etcd-peer"]
        launch("etcd", [str(binaries["etcd"]), "--name", "llmplane", "--data-dir", str(self.dir / "etcd"),
                        "--listen-client-urls", f"http://127.0.0.1:{etcd}",
                        "--advertise-client-urls", f"http://127.0.0.1:{etcd}",
                        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                        "--initial-cluster", f"llmplane=http://127.0.0.1:{peer}",
                        "--log-level", "warn", "--unsafe-no-fsync"])
        self._wait_http(f"http://127.0.0.1:{etcd}/health", "etcd")
        p = self.pki
        launch("kube-apiserver", [
            str(binaries["kube-apiserver"]),
            "--bind-address=127.0.0.1", f"--secure-port={state.ports['kube-apiserver']}",
            "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
            f"--etcd-servers=http://127.0.0.1:{etcd}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={p / 'service-account.pub'}",
            f"--service-account-signing-key-file={p / 'service-account.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--allow-privileged=true",
            # The aggregation layer (KEDA's external metrics API) authenticates through the front proxy.
            f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
            "--profiling=false",
        ])
        self._wait_ready(state.ports["kube-apiserver"])
        launch("kube-controller-manager", [
            str(binaries["kube-controller-manager"]),
            f"--kubeconfig={creds['kube-controller-manager']}",
            f"--authentication-kubeconfig={creds['kube-controller-manager']}",
            f"--authorization-kubeconfig={creds['kube-controller-manager']}",
            "--bind-address=127.0.0.1", f"--secure-port={state.ports['kube-controller-manager']}",
            "--leader-elect=false", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={p / 'service-account.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}", f"--cluster-signing-key-file={p / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            # Short enough that an autoscaling loop is observable in a test, the same algorithm as a real cluster.
            "--horizontal-pod-autoscaler-sync-period=5s",
            "--profiling=false",
        ])
        launch("kube-scheduler", [
            str(binaries["kube-scheduler"]),
            f"--kubeconfig={creds['kube-scheduler']}",
            f"--authentication-kubeconfig={creds['kube-scheduler']}",
            f"--authorization-kubeconfig={creds['kube-scheduler']}",
            "--bind-address=127.0.0.1", f"--secure-port={state.ports['kube-scheduler']}",
            "--leader-elect=false", "--profiling=false",
        ])
        stages = self.dir / "kwok-stages.yaml"
        stages.write_text(_NODE_STAGE + "---\n" + _POD_STAGES)
        launch("kwok", [
            str(binaries["kwok"]), f"--kubeconfig={creds['kwok']}", f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            "--node-lease-duration-seconds=40", "--cidr=10.244.0.0/16", "--node-ip=10.244.255.1",
            f"--server-address=127.0.0.1:{state.ports['kwok']}",
        ])
        time.sleep(1)
        dead = [name for name, pid in state.pids.items() if not _alive(pid)]
        if dead:
            raise ClusterError(f"{', '.join(dead)} exited at start; see {self.logs}/<name>.log")
        say(f"cluster: control plane ready at {self.api_url()} in {time.monotonic() - started:.1f} s "
            f"(Kubernetes v{gotools.K8S_VERSION}, logs in {self.logs})")

    def _credentials(self, api_port: int) -> dict[str, Path]:
        """Generate (once) the PKI and write a kubeconfig per identity; returns their paths."""
        ca = pki.ensure_ca(self.pki, "ca")
        front_ca = pki.ensure_ca(self.pki, "front-proxy-ca")
        pki.ensure_leaf(self.pki, "apiserver", ca, "kube-apiserver",
                        server_names=("127.0.0.1", "localhost", pki.SERVICE_IP, "kubernetes",
                                      "kubernetes.default", "kubernetes.default.svc",
                                      "kubernetes.default.svc.cluster.local"))
        pki.ensure_leaf(self.pki, "front-proxy-client", front_ca, "front-proxy-client")
        pki.ensure_service_account_keys(self.pki)
        identities = {
            "admin": ("llmplane-admin", "system:masters"),
            "kube-controller-manager": ("system:kube-controller-manager", None),
            "kube-scheduler": ("system:kube-scheduler", None),
            # KWOK updates node and pod status for every fake node: cluster-admin, as its own docs run it.
            "kwok": ("llmplane-kwok", "system:masters"),
        }
        paths = {}
        for name, (user, group) in identities.items():
            pair = pki.ensure_leaf(self.pki, name, ca, user, organization=group)
            path = self.kubeconfig if name == "admin" else self.pki / f"{name}.kubeconfig"
            self._write_kubeconfig(path, api_port, ca, pair)
            paths[name] = path
        return paths

    @staticmethod
    def _write_kubeconfig(path: Path, api_port: int, ca: pki.Pair, pair: pki.Pair) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "llmplane-local",
            "clusters": [{"name": "llmplane-local", "cluster": {
                "server": f"https://127.0.0.1:{api_port}", "certificate-authority": str(ca.cert)}}],
            "users": [{"name": "llmplane-local", "user": {
                "client-certificate": str(pair.cert), "client-key": str(pair.key)}}],
            "contexts": [{"name": "llmplane-local", "context": {"cluster": "llmplane-local",
                                                                "user": "llmplane-local"}}],
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def _wait_http(self, url: str, what: str, context: ssl.SSLContext | None = None) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except OSError as error:
                last = str(error)
            dead = [name for name, pid in self._read_state().pids.items() if not _alive(pid)]
            if dead:
                raise ClusterError(f"{', '.join(dead)} exited while starting; see {self.logs}/{dead[0]}.log")
            time.sleep(0.3)
        raise ClusterError(f"{what} was not ready within {READY_TIMEOUT_S} s ({last}); see {self.logs}")

    def _wait_ready(self, api_port: int) -> None:
        self._wait_http(f"https://127.0.0.1:{api_port}/readyz", "kube-apiserver", self._ssl_context())

    # -- nodes ---------------------------------------------------------------------------------------------------

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        kubectl = getattr(self, "kubectl_bin", None) or gotools.build(gotools.TOOLS["kubectl"])
        done = subprocess.run([str(kubectl), f"--kubeconfig={self.kubeconfig}", *args], input=input_text,
                              capture_output=True, text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def _apply_nodes(self, nodes: list[FakeNode]) -> None:
        wanted = {node.name for node in nodes}
        existing = self.kubectl("get", "nodes", "-o", "json")
        for item in json.loads(existing)["items"]:
            name = item["metadata"]["name"]
            fake = item["metadata"].get("annotations", {}).get(FAKE_NODE_ANNOTATION) == "fake"
            if fake and name not in wanted:
                self.kubectl("delete", "node", name, "--wait=false")
        for node in nodes:
            # Nodes keep the status they are created with; only create the missing ones.
            self.kubectl("create", "-f", "-", input_text=json.dumps(node.manifest()), check=False)
        self._wait_nodes_ready(wanted)

    def _wait_nodes_ready(self, names: set[str]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            ready = set()
            for item in json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]:
                conditions = {c["type"]: c["status"] for c in item.get("status", {}).get("conditions", [])}
                if conditions.get("Ready") == "True":
                    ready.add(item["metadata"]["name"])
            if names <= ready:
                return
            time.sleep(0.5)
        raise ClusterError(f"fake nodes {sorted(names - ready)} did not become Ready; see {self.logs}/kwok.log")

    # -- down and status -----------------------------------------------------------------------------------------

    def down(self, say=print) -> list[str]:
        """Stop every process this cluster started (SIGTERM, then SIGKILL); returns their names."""
        state = self._read_state()
        stopped = []
        for name in reversed(list(state.pids)):
            pid = state.pids[name]
            if not _alive(pid):
                continue
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
            stopped.append(name)
        if self.state_file.exists():
            self._write_state(ClusterState(ports=state.ports))
        say(f"cluster: stopped {', '.join(stopped) if stopped else 'nothing (nothing was running)'}")
        return stopped

    def status(self) -> str:
        alive = self.running()
        if not alive:
            return f"cluster: not running (state in {self.dir}); start it with `llmplane cluster up`"
        lines = [f"cluster: {self.api_url()} — kubeconfig {self.kubeconfig}"]
        for name, pid in alive.items():
            lines.append(f"  {name:<26} pid {pid}")
        missing = [name for name in self._read_state().pids if name not in alive]
        if missing:
            lines.append(f"  not running: {', '.join(missing)} (run `llmplane cluster up` to restart)")
        return "\n".join(lines)

    def read_ports(self) -> dict[str, int]:
        return dict(self._read_state().ports)

    def record_port(self, name: str, port: int) -> None:
        """Keep a port across restarts (a stack's config may name it, e.g. Prometheus's)."""
        state = self._read_state()
        state.ports[name] = port
        self._write_state(state)

    def start_process(self, name: str, argv: list[str], env: dict[str, str] | None = None,
                      cwd: Path | None = None) -> int:
        """Start one more process beside the control plane (KEDA, Prometheus), stopped by `down`."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd or self.dir, start_new_session=True, env=env)
        state = self._read_state()
        state.pids[name] = proc.pid
        state.commands[name] = argv
        self._write_state(state)
        return proc.pid
