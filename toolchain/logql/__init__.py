"""Every LogQL query llmplane ships, and Grafana's own LogQL grammar to check them with.

The queries live in the dashboard (Loki panels) and in the runbook (the
queries an on-call engineer pastes into Grafana Explore). They are parsed by
`@grafana/lezer-logql`, the grammar Grafana's editor uses, run under Node
(check.cjs); the package is installed once from npm into the llmplane cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from llmplane.monitoring import dashboards, tenant_usage
from llmplane.toolchain.prerequisites import LEZER_LOGQL_VERSION, lezer_logql_dir

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "monitoring" / "runbook.md"
CHECKER = Path(__file__).with_name("check.cjs")

_RUNBOOK_QUERY = re.compile(r"^- [^:`]+: (``? ?)(\{.*?)\1$", re.M)
"""A runbook bullet `- what: `query`` (double backticks where the query holds one)."""
GRAFANA_VARIABLES = {"$__auto": "1m", "$__rate_interval": "1m", "$model": ".+", "$version": ".+"}
"""What Grafana substitutes before a dashboard query reaches Loki (sample values)."""


@dataclass(frozen=True)
class ShippedQuery:
    where: str
    query: str


@dataclass(frozen=True)
class Parsed:
    ok: bool
    error_at: int | None
    labels: tuple[str, ...]


def grammar_dir() -> Path:
    return lezer_logql_dir() / "node_modules"


def interpolate(expr: str) -> str:
    """A dashboard query as Grafana sends it, its variables replaced."""
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    return expr


def shipped_queries() -> list[ShippedQuery]:
    found = [ShippedQuery("dashboard", interpolate(expr)) for expr in dashboards.queries()["logql"]]
    for match in _RUNBOOK_QUERY.finditer(RUNBOOK.read_text()):
        # The runbook's placeholders stand for label values; fill them as a reader would.
        query = match.group(2).rstrip().replace("<model>", "llama-3-8b").replace("<version>", "1.0.0")
        found.append(ShippedQuery("monitoring/runbook.md", query))
    found += [ShippedQuery("loki ruler", rule["expr"])
              for group in tenant_usage.loki_rule_groups()["groups"] for rule in group["rules"]]
    return found


def parse(queries: list[str]) -> list[Parsed]:
    """Each query through Grafana's grammar: whether it parses, where the first error is, which labels it
    selects on. Raises FileNotFoundError naming the install command when Node or the grammar is missing."""
    node = shutil.which("node")
    if node is None:
        raise FileNotFoundError("node is missing: apt-get install nodejs")
    if not (grammar_dir() / "@grafana" / "lezer-logql").is_dir():
        raise FileNotFoundError(f"@grafana/lezer-logql is missing: run `make test-setup` (npm install --prefix "
                                f"{grammar_dir().parent} @grafana/lezer-logql@{LEZER_LOGQL_VERSION})")
    done = subprocess.run([node, str(CHECKER)], input=json.dumps(queries), capture_output=True, text=True,
                          env={**os.environ, "NODE_PATH": str(grammar_dir())}, timeout=60, check=True)
    return [Parsed(r["ok"], r["error_at"], tuple(r["labels"])) for r in json.loads(done.stdout)]
