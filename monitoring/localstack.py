"""The monitoring stack on 127.0.0.1, against simulators: for tests and for a look around.

Starts real servers, each on a loopback port with its data in a given
folder: Debian's Prometheus (our rules, scrape and evaluation every second or
as asked) discovering the simulators over HTTP service discovery and
relabeling pod labels into `model` and `version` as in a cluster; Grafana
Loki built by `.ci/services.sh install`; and a log shipper thread.
`python -m monitoring.localstack --dir DIR` runs it until interrupted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

from monitoring import rules, vllm_metrics as vm
from monitoring.logship import Shipper

ROOT = Path(__file__).resolve().parents[1]
LOKI_DIR = ROOT / ".tools" / "loki"
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


def loki_binary() -> Path | None:
    """The Loki that `.ci/services.sh install` built, newest version first."""
    built = sorted(LOKI_DIR.glob("loki-v*"), reverse=True)
    return built[0] if built else None


def loki_missing_reason() -> str:
    unavailable = LOKI_DIR / "UNAVAILABLE"
    if unavailable.exists():
        return unavailable.read_text(encoding="utf-8").strip()
    return f"no Loki in {LOKI_DIR}: run .ci/services.sh install"


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


def start_simulator(workdir: Path, mode: str, model: str, port: int | None = None) -> Server:
    port = port or free_port()
    argv = [sys.executable, "-m", "monitoring.simulator", "--host", LOOPBACK, "--port", str(port),
            "--mode", mode, "--model", model, "--log", str(workdir / f"{model}.log")]
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


def start_prometheus(workdir: Path, sd_urls: list[str], params: rules.AlertParams,
                     interval: str = "1s", port: int | None = None) -> Server:
    port = port or free_port()
    rule_file = workdir / "rules.yaml"
    rule_file.write_text(rules.dump(rules.rule_groups(rules.prometheus_rule(params))), encoding="utf-8")
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(sd_urls, rule_file, interval)), encoding="utf-8")
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus is not installed: run .ci/services.sh install")
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn"]
    return Server("prometheus", argv, workdir, f"http://{LOOPBACK}:{port}", "/-/ready")


def loki_config(workdir: Path, port: int, grpc_port: int) -> dict[str, Any]:
    """Single-binary Loki on the filesystem, in-memory ring, nothing beyond loopback."""
    data = workdir / "loki-data"
    return {
        "auth_enabled": False,
        "server": {"http_listen_address": LOOPBACK, "http_listen_port": port,
                   "grpc_listen_address": LOOPBACK, "grpc_listen_port": grpc_port, "log_level": "warn"},
        "common": {
            "instance_addr": LOOPBACK, "path_prefix": str(data), "replication_factor": 1,
            "storage": {"filesystem": {"chunks_directory": str(data / "chunks"),
                                       "rules_directory": str(data / "rules")}},
            "ring": {"kvstore": {"store": "inmemory"}},
        },
        "schema_config": {"configs": [{"from": "2024-01-01", "store": "tsdb", "object_store": "filesystem",
                                       "schema": "v13", "index": {"prefix": "index_", "period": "24h"}}]},
        # Ready at once rather than after the production default of 15s.
        "ingester": {"lifecycler": {"min_ready_duration": "0s", "final_sleep": "0s"}},
        "analytics": {"reporting_enabled": False},
    }


def start_loki(workdir: Path, binary: Path, port: int | None = None) -> Server:
    port = port or free_port()
    config = workdir / "loki.yaml"
    config.write_text(yaml.safe_dump(loki_config(workdir, port, free_port())), encoding="utf-8")
    return Server("loki", [str(binary), f"-config.file={config}"], workdir,
                  f"http://{LOOPBACK}:{port}", "/ready")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monitoring.localstack", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="folder for configs, data, logs and outputs")
    parser.add_argument("--mode", default="normal", help="simulator mode")
    parser.add_argument("--simulator-port", type=int, default=8000)
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--loki-port", type=int, default=3100)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    servers = [start_simulator(args.dir, args.mode, "llama-3-8b", args.simulator_port)]
    try:
        servers.append(start_prometheus(args.dir, [servers[0].url + "/targets"],
                                        rules.AlertParams(), interval="5s", port=args.prometheus_port))
        binary = loki_binary()
        if binary:
            servers.append(start_loki(args.dir, binary, args.loki_port))
            servers[-1].wait_ready(60)
            shipper = Shipper(servers[-1].url, [args.dir / "llama-3-8b.log"])
            threading.Thread(target=shipper.run, args=(stop,), daemon=True).start()
        else:
            print(f"Loki skipped: {loki_missing_reason()}", file=sys.stderr)
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
