"""The reference documentation: generated from the components' docstrings by `make docs`, every reference live."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.engine import ROOT
from toolchain.docs import broken_links, unresolved_references


def test_make_docs_builds_the_reference_with_every_reference_resolving(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    done = subprocess.run([sys.executable, "-m", "toolchain.docs", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every reference resolves" in done.stdout
    base = (out / "components" / "clusters" / "base.html").read_text()
    # The one cluster interface, with each member's docstring.
    assert "GpuCluster" in base and "bind_workload_identity" in base
    assert "Handles for hybrid links and cloud resources beside the cluster" in base
    service = (out / "components" / "serving" / "vllm_service.html").read_text()
    assert "Fixed replica count; None when an autoscaler owns it" in service
    assert (out / "facts" / "gpus.html").is_file()


def test_the_check_reports_dead_links_and_references_that_do_not_resolve(tmp_path: Path) -> None:
    (tmp_path / "components").mkdir()
    page = tmp_path / "components" / "thing.html"
    page.write_text('<html><body><section id="Thing">'
                    '<a href="other.html">gone</a> <a href="#Nowhere">anchor</a> <a href="#Thing">fine</a>'
                    '<a href="https://example.com/x">elsewhere</a>'
                    '<p>Uses <code>facts.gpus.NO_SUCH_TABLE</code> and '
                    '<a href="thing.html#Thing"><code>components.thing.Thing</code></a>.</p>'
                    '</section></body></html>')
    pages = [page]
    assert sorted(broken_links(tmp_path, pages)) == [
        "components/thing.html: link to #Nowhere: no such anchor",
        "components/thing.html: link to other.html: no such page",
    ]
    assert list(unresolved_references(tmp_path, pages)) == [
        "components/thing.html: `facts.gpus.NO_SUCH_TABLE` does not resolve to a documented name"]
