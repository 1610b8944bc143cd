"""Request traces: arrival time, prompt tokens, output tokens.

The Azure LLM inference traces (Azure Public Dataset, CC-BY 4.0) are read from `<repo>/../shared/traces` at run
time, never copied into the repository; `LLMPLANE_TRACES` points elsewhere.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ATTRIBUTION = (
    'Trace: Azure LLM inference trace 2023, Azure Public Dataset (CC-BY 4.0); Patel et al., "Splitwise: '
    'Efficient generative LLM inference using phase splitting", ISCA 2024.'
)
"""The attribution the traces' licence requires on anything that reports results from them."""

TRACES_ENV = "LLMPLANE_TRACES"
"""Environment variable naming the folder of the shared traces."""

AZURE_TRACES = {"code": "AzureLLMInferenceTrace_code.csv", "conv": "AzureLLMInferenceTrace_conv.csv"}
"""The two Azure traces by short name."""


AZURE_2023 = "azure-2023"
"""`--trace-credit` value naming the Azure 2023 traces, e.g. for an excerpt of them under another file name."""


def credit(trace_name: str, given: str | None = None) -> str:
    """The credit line a report on a trace carries: what the user gave (`azure-2023` for the Azure traces'
    attribution), else the Azure attribution for the Azure trace files themselves, else the file's name and how to
    credit it: nothing here knows another trace's source."""
    if given == AZURE_2023 or (given is None and trace_name in AZURE_TRACES.values()):
        return ATTRIBUTION
    if given:
        return f"Trace: {given}"
    return f"Trace: {trace_name} (name its source and licence with --trace-credit)"

_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_EPOCH = datetime(1970, 1, 1)


class TraceError(ValueError):
    """A trace file that is missing or not in the expected shape."""


@dataclass(frozen=True)
class Trace:
    """Requests sorted by arrival; times in seconds after the first request."""

    name: str
    arrivals: tuple[float, ...]
    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.arrivals)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last arrival."""
        return self.arrivals[-1] if self.arrivals else 0.0

    def servable(self, max_model_len: int) -> tuple[Trace, int]:
        """The requests vLLM accepts, keeping their times, and how many it rejects: a prompt that leaves no room
        for one output token in `max_model_len` is answered with an error, not served."""
        keep = [i for i, p in enumerate(self.prompt_tokens) if p < max_model_len]
        kept = Trace(self.name, tuple(self.arrivals[i] for i in keep), tuple(self.prompt_tokens[i] for i in keep),
                     tuple(self.output_tokens[i] for i in keep))
        return kept, len(self) - len(keep)

    def capped(self, max_tokens: int | None) -> Trace:
        """The trace with every output cut at `max_tokens`: what a version's generation default `maxTokens` does to
        requests that set no `max_tokens` of their own (vLLM's `--override-generation-config` `max_new_tokens`). The
        traces do not say which requests set one, so all are taken not to: the most the default can shorten."""
        if max_tokens is None:
            return self
        return Trace(self.name, self.arrivals, self.prompt_tokens,
                     tuple(min(out, max_tokens) for out in self.output_tokens))

    def without_long_gaps(self, longest: float) -> tuple[Trace, list[tuple[float, float]]]:
        """The trace with every gap between arrivals longer than `longest` shortened to `longest`, and the cuts as
        (time in the shortened trace where the gap ends, seconds removed). Replay cost then follows the requests,
        not the calendar: a fleet has settled long before a gap of `longest` ends."""
        arrivals, cuts, removed = [], [], 0.0
        previous = None
        for t in self.arrivals:
            if previous is not None and t - previous > longest:
                removed += t - previous - longest
                cuts.append((t - removed, t - previous - longest))
            arrivals.append(t - removed)
            previous = t
        return Trace(self.name, tuple(arrivals), self.prompt_tokens, self.output_tokens), cuts

    def window(self, start: float, end: float, name: str | None = None) -> Trace:
        """The requests arriving in [start, end), re-timed from the first of them."""
        idx = [i for i, t in enumerate(self.arrivals) if start <= t < end]
        if not idx:
            return Trace(name or self.name, (), (), ())
        t0 = self.arrivals[idx[0]]
        return Trace(
            name or f"{self.name}[{start:g}s,{end:g}s)",
            tuple(self.arrivals[i] - t0 for i in idx),
            tuple(self.prompt_tokens[i] for i in idx),
            tuple(self.output_tokens[i] for i in idx),
        )


def traces_dir(repo_root: Path | None = None) -> Path:
    """Folder of the shared traces: $LLMPLANE_TRACES, else `<repo root>/../shared/traces`."""
    override = os.environ.get(TRACES_ENV)
    if override:
        return Path(override)
    root = repo_root or Path(__file__).resolve().parent.parent
    return root.parent / "shared" / "traces"


def azure_trace_path(kind: str, repo_root: Path | None = None) -> Path:
    """Path of an Azure trace by short name, `code` or `conv`."""
    return traces_dir(repo_root) / AZURE_TRACES[kind]


_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?$")
_ZONED = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def _seconds(stamp: str) -> float:
    """'YYYY-MM-DD HH:MM:SS.fffffff', naive UTC as the Azure traces write it (datetime takes 6 fractional digits)."""
    text = stamp.strip()
    match = _STAMP.match(text)
    if match is None:
        if _ZONED.search(text):
            raise ValueError(f"timestamp {text!r} carries a time zone; write naive UTC times, e.g. "
                             "2023-11-16 18:15:46.6805900")
        raise ValueError(f"timestamp {text!r} is not YYYY-MM-DD HH:MM:SS[.fraction]")
    whole = (datetime.fromisoformat(match.group(1)) - _EPOCH).total_seconds()
    return whole + (float("0." + match.group(2)) if match.group(2) else 0.0)


def _tokens(text: str, column: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{column} is {value}; every request has at least one token")
    return value


def _rows(path: Path, reader) -> list[tuple[float, int, int]]:
    header = next(reader, None)
    if header is None:
        raise TraceError(f"trace file {path} is empty")
    header = [h.strip() for h in header]
    missing = [c for c in _COLUMNS if c not in header]
    if missing:
        raise TraceError(f"trace file {path} lacks column(s) {', '.join(missing)} (has: {', '.join(header)})")
    ts, ctx, gen = (header.index(c) for c in _COLUMNS)
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if any("\x00" in field for field in row):
            raise TraceError(f"trace file {path} is not a text CSV (line {line} holds a NUL byte); give the trace "
                             "as CSV text")
        try:
            rows.append((_seconds(row[ts]), _tokens(row[ctx], _COLUMNS[1]), _tokens(row[gen], _COLUMNS[2])))
        except (ValueError, IndexError) as error:
            raise TraceError(f"trace file {path} line {line}: {error}") from None
    return rows


def read_trace(path: str | Path) -> Trace:
    """Read an Azure-format CSV (TIMESTAMP, ContextTokens, GeneratedTokens); raise TraceError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"trace file {path} does not exist")
    with path.open(newline="", encoding="utf-8", errors="strict") as handle:
        try:
            rows = _rows(path, csv.reader(handle))
        except UnicodeDecodeError as error:
            raise TraceError(f"trace file {path} is not a text CSV (byte {error.start} is not UTF-8); give the "
                             "trace as CSV text") from None
        except csv.Error as error:
            raise TraceError(f"trace file {path} is not a text CSV ({error}); give the trace as CSV text") from None
    if not rows:
        raise TraceError(f"trace file {path} has no requests")
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0]
    return Trace(
        path.name,
        tuple(r[0] - t0 for r in rows),
        tuple(r[1] for r in rows),
        tuple(r[2] for r in rows),
    )


def synthetic_trace(
    rate_per_second: list[tuple[float, float]], prompt: int = 1000, output: int = 100, name: str = "synthetic"
) -> Trace:
    """Evenly spaced requests: for each (seconds, rate) segment in turn, `rate` requests per second."""
    arrivals: list[float] = []
    start = 0.0
    for seconds, rate in rate_per_second:
        if rate > 0:
            n = int(round(seconds * rate))
            arrivals.extend(start + (k + 0.5) / rate for k in range(n))
        start += seconds
    return Trace(name, tuple(arrivals), (prompt,) * len(arrivals), (output,) * len(arrivals))
