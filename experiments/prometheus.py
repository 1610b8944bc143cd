"""A small client of Prometheus's HTTP API (`/api/v1/query`, `/api/v1/query_range`), evaluated at one instant so
that every query of a report sees the same data."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or refused a query; the message names the query."""


class Client:
    """Queries one Prometheus at a fixed evaluation time (now, when the client is made)."""

    def __init__(self, url: str, at: float | None = None, timeout: float = 30.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self.at = time.time() if at is None else at

    def _get(self, path: str, **params: str) -> list[dict]:
        address = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}").get("error", error.reason)
            raise PrometheusError(f"Prometheus at {self.url} refused {params.get('query')!r}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {error}") from None
        return body["data"]["result"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant vector at the client's time: (labels, value) per series, NaN values dropped."""
        samples = [(s["metric"], float(s["value"][1])) for s in self._get("/api/v1/query", query=expr,
                                                                          time=f"{self.at:.3f}")]
        return [(labels, value) for labels, value in samples if not math.isnan(value)]

    def query_range(self, expr: str, seconds: float, step: float) -> list[tuple[dict[str, str], list[float]]]:
        """A range of `seconds` ending at the client's time, one value per step (a missing step reads 0)."""
        start = self.at - seconds + step
        result = self._get("/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{self.at:.3f}",
                           step=f"{step:.3f}")
        steps = int(round((self.at - start) / step)) + 1
        series = []
        for s in result:
            values = [0.0] * steps
            for stamp, value in s["values"]:
                index = int(round((float(stamp) - start) / step))
                if 0 <= index < steps and not math.isnan(float(value)):
                    values[index] = float(value)
            series.append((s["metric"], values))
        return series
