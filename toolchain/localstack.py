"""The monitoring stack on 127.0.0.1, against simulators: for tests and for a look around.

Starts real servers, each on a loopback port with its data in a given
folder: Debian's Prometheus (our rules, scrape and evaluation every second or
as asked) discovering the simulators over HTTP service discovery and
relabeling pod labels into `model` and `version` as in a cluster;
VictoriaLogs (Apache-2.0), which takes Loki's push API, as the log store
(Loki itself is AGPL and never built or run here); and a log shipper thread
that pushes in Loki's format with the labels our Alloy configuration sets.
`python -m llmplane.toolchain.localstack --dir DIR` runs it until interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from llmplane.monitoring import rules
from llmplane.monitoring import vllm_metrics as vm
from llmplane.toolchain import prerequisites
from llmplane.toolchain.logship import Shipper

ROOT = Path(__file__).resolve().parents[1]
LOKI_PUSH_PATH = "/insert/loki/api/v1/push"
"""Where VictoriaLogs accepts Loki's push API (the same JSON body Alloy sends to Loki)."""
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, period: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout:.0f}s")
        time.sleep(period)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def get_json(url: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(url + query, timeout=10) as response:
        return json.load(response)


def victoria_logs_binary() -> Path:
    """VictoriaLogs (Apache-2.0), built once from its Go module by `make test`'s set-up (toolchain/gotools.py)."""
    from llmplane.toolchain import gotools

    tool = gotools.TOOLS["victoria-logs"]
    binary = tool.path()
    if binary is None:
        raise FileNotFoundError(f"VictoriaLogs v{tool.version} is not built: run `make test-setup` "
                                "(or `python -m llmplane.toolchain.gotools build victoria-logs`)")
    return binary


class Server:
    """A child process; its output goes to a file next to its data."""

    def __init__(self, name: str, argv: list[str], workdir: Path, url: str, ready_path: str,
                 cwd: Path | None = None) -> None:
        self.name, self.url = name, url
        self.output = workdir / f"{name}.out"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd or workdir)
        self.ready_url = url + ready_path

    def wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: "
                                   + self.output.read_text(errors="replace")[-2000:])
            return http_ok(self.ready_url)

        wait_until(ready, timeout, self.name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def simulator_argv(port: int, mode: str, model: str, log: Path, versions: tuple[str, str] | None = None) -> list[str]:
    """The command line of a simulator of `model` (baseline and canary `versions`), run from the project root."""
    argv = [sys.executable, "-m", "llmplane.toolchain.simulator", "--host", LOOPBACK, "--port", str(port),
            "--mode", mode, "--model", model, "--log", str(log)]
    if versions:
        argv += ["--baseline", versions[0], "--canary", versions[1]]
    return argv


def start_simulator(workdir: Path, mode: str, model: str, port: int | None = None) -> Server:
    port = port or free_port()
    argv = simulator_argv(port, mode, model, workdir / f"{model}.log")
    return Server(f"simulator-{model}", argv, workdir, f"http://{LOOPBACK}:{port}", "/health", cwd=ROOT)


def prometheus_config(sd_urls: list[str], rule_file: Path, interval: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rule_file)],
        "scrape_configs": [{
            "job_name": "vllm",
            "http_sd_configs": [{"url": url, "refresh_interval": "5s"} for url in sd_urls],
            "relabel_configs": [dict(c) for c in vm.POD_RELABEL_CONFIGS],
        }],
    }


def prometheus_argv(workdir: Path, sd_urls: list[str], params: rules.AlertParams, interval: str,
                    port: int) -> list[str]:
    """Write Prometheus's config and our rules into workdir; return its command line (loopback only)."""
    rule_file = workdir / "rules.yaml"
    rule_file.write_text(rules.dump(rules.rule_groups(rules.prometheus_rule(params))), encoding="utf-8")
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(sd_urls, rule_file, interval)), encoding="utf-8")
    binary = prerequisites.binary("prometheus")
    return [str(binary), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn"]


def start_prometheus(workdir: Path, sd_urls: list[str], params: rules.AlertParams,
                     interval: str = "1s", port: int | None = None) -> Server:
    port = port or free_port()
    argv = prometheus_argv(workdir, sd_urls, params, interval, port)
    return Server("prometheus", argv, workdir, f"http://{LOOPBACK}:{port}", "/-/ready")


def start_victoria_logs(workdir: Path, binary: Path, port: int | None = None) -> Server:
    """A log store that implements Loki's push API under a permissive licence; data in workdir, loopback only."""
    port = port or free_port()
    argv = [str(binary), f"-httpListenAddr={LOOPBACK}:{port}", f"-storageDataPath={workdir / 'victoria-logs-data'}",
            "-retentionPeriod=1d", "-loggerLevel=WARN"]
    return Server("victoria-logs", argv, workdir, f"http://{LOOPBACK}:{port}", "/health")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmplane.toolchain.localstack",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="folder for configs, data, logs and outputs")
    parser.add_argument("--mode", default="normal", help="simulator mode")
    parser.add_argument("--simulator-port", type=int, default=8000)
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--logs-port", type=int, default=9428)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    servers = [start_simulator(args.dir, args.mode, "llama-3-8b", args.simulator_port)]
    try:
        servers.append(start_prometheus(args.dir, [servers[0].url + "/targets"],
                                        rules.AlertParams(), interval="5s", port=args.prometheus_port))
        servers.append(start_victoria_logs(args.dir, victoria_logs_binary(), args.logs_port))
        servers[-1].wait_ready(60)
        shipper = Shipper(servers[-1].url + LOKI_PUSH_PATH, [args.dir / "llama-3-8b.log"])
        threading.Thread(target=shipper.run, args=(stop,), daemon=True).start()
        for server in servers:
            server.wait_ready(60)
            print(f"{server.name}: {server.url}", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for server in reversed(servers):
            server.stop()


if __name__ == "__main__":
    main()
