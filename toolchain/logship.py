"""Ships JSON request logs to a Loki push API, as a cluster's log agent (Alloy) would.

In a cluster the agent labels each stream with the pod's `llmplane.dev/model`
and `llmplane.dev/model-version` as `model` and `version`; here the served
model name `<model>:<version>` in each line stands in for the pod, so the
streams carry the same labels and the dashboards' LogQL finds them.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from datetime import datetime
from pathlib import Path

NAMESPACE = "llmplane"
"""The serving namespace model pods run in (components.serving.namespace.SERVING_NAMESPACE)."""


def stream_labels(record: dict[str, object]) -> dict[str, str]:
    """The labels the cluster's agent (Alloy) gives a model pod's stream."""
    model, _, version = str(record["model_name"]).rpartition(":")
    return {"namespace": NAMESPACE, "pod": str(record["pod"]), "model": model, "version": version}


def push_body(lines: list[str]) -> dict[str, object]:
    """Loki's JSON push body: lines grouped into streams by their labels."""
    streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    for line in lines:
        record = json.loads(line)
        nanos = int(datetime.fromisoformat(str(record["ts"])).timestamp() * 1e9)
        key = tuple(sorted(stream_labels(record).items()))
        streams.setdefault(key, []).append([str(nanos), line])
    return {"streams": [{"stream": dict(key), "values": values} for key, values in streams.items()]}


class Shipper:
    """Tails log files and pushes complete new lines to Loki."""

    def __init__(self, push_url: str, paths: list[Path]) -> None:
        """`push_url`: the full push endpoint, e.g. Loki's `/loki/api/v1/push`."""
        self.push_url = push_url
        self.offsets = {path: 0 for path in paths}

    def ship_once(self) -> int:
        """Push what was appended since the last call; returns the number of lines."""
        lines: list[str] = []
        for path, offset in self.offsets.items():
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self.offsets[path] = offset + len(complete)
            lines += complete.decode("utf-8").splitlines()
        if lines:
            request = urllib.request.Request(
                self.push_url, data=json.dumps(push_body(lines)).encode(),
                headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=10):
                pass
        return len(lines)

    def run(self, stop: threading.Event, period: float = 1.0) -> None:
        while not stop.wait(period):
            self.ship_once()
