"""The documentation: the reference generated from the components' docstrings by `make docs`, every reference live;
the README short, its architecture picture the one drawn from the code, every guide linked and every link live."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from llmplane.toolchain.architecture import BEGIN, END, ArchitectureError, block_in, render, with_block
from llmplane.toolchain.docs import (
    MARKDOWN_LINK,
    README,
    architecture_problems,
    broken_links,
    dead_markdown_links,
    markdown_files,
    unresolved_references,
)
from llmplane.toolchain.layers import LAYERS

from tests.engine import ROOT


def test_make_docs_builds_the_reference_with_every_reference_resolving(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    done = subprocess.run([sys.executable, "-m", "llmplane.toolchain.docs", "--out", str(out)], cwd=ROOT,
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


def test_the_readme_shows_the_architecture_drawn_from_the_code():
    """The README's picture is the one toolchain/architecture.py draws from compose's phases, the components, the
    providers and the layers; `make docs` fails otherwise."""
    readme = README.read_text()
    assert block_in(readme) == render()
    assert architecture_problems() == []
    picture = render()
    for phase in ("Phase 1 — cluster_platform()", "Phase 2 — cluster_gateway()", "Phase 3, per model — serve_model()"):
        assert phase in picture
    assert "VllmService" in picture and "pulumi-kubernetes 4.25.0" in picture
    assert "  6  stacks.cli" in picture and "  0  facts" in picture


def test_a_stale_or_missing_architecture_picture_is_reported_with_the_command_that_redraws_it(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text().replace("serve_model()", "serve_models()", 1))
    assert architecture_problems(readme) == [
        "README.md's architecture picture differs from the code's (stacks/compose.py's PHASES, components/, "
        "toolchain/layers.py); regenerate it with: python -m llmplane.toolchain.docs --write-architecture"]
    readme.write_text(with_block(readme.read_text(), render()))
    assert architecture_problems(readme) == []
    readme.write_text("# no picture\n")
    assert architecture_problems(readme) == [f"README.md has no architecture block between {BEGIN} and {END}"]


def _project(root: Path, compose: str) -> Path:
    """A project of one component and a compose module, for the renderer."""
    (root / "components").mkdir(parents=True)
    (root / "components" / "thing.py").write_text(
        "import pulumi\nimport pulumi_kubernetes as k8s\n\n\nclass Thing(pulumi.ComponentResource):\n    pass\n\n\n"
        "class Other(Thing):\n    pass\n")
    (root / "stacks").mkdir()
    (root / "stacks" / "compose.py").write_text(compose)
    (root / "pyproject.toml").write_text('dependencies = ["pulumi-kubernetes==1.2.3"]\n')
    return root


def test_the_picture_follows_the_phases_and_the_components_they_create(tmp_path: Path):
    root = _project(tmp_path, '''from llmplane.components.thing import Other, Thing

KINDS = {"a": Other}


def _helper():
    Thing("x")


def first(spec: Thing) -> Thing:
    """Phase 1: builds the base.

    More detail that the picture leaves out."""
    return KINDS["a"]("y")


def second():
    """Phase 2, per model: calls a helper."""
    _helper()


def compose():
    first(None)
    second()


PHASES = (first, second)
''')
    picture = render(root)
    assert "Phase 1 — first(): builds the base.\n  │    creates Other\n" in picture
    assert "Phase 2, per model — second(): calls a helper.\n  │    creates Thing\n" in picture
    assert "More detail" not in picture and "beside the phases" not in picture
    assert "components/  2 ComponentResource classes" in picture
    assert "providers    pulumi-kubernetes 1.2.3" in picture


def test_the_renderer_says_what_is_missing_when_compose_changes_shape(tmp_path: Path):
    root = _project(tmp_path / "a", 'def first():\n    """Phase 1: one."""\n')
    with pytest.raises(ArchitectureError, match=r"no PHASES = \(phase, \.\.\.\) tuple"):
        render(root)
    root = _project(tmp_path / "b", 'def first():\n    """Phase 2: out of order."""\n\n\nPHASES = (first,)\n')
    with pytest.raises(ArchitectureError, match=r"first\(\) is PHASES\[0\], so its docstring must start 'Phase 1"):
        render(root)


def test_the_readme_stays_short_and_every_guide_is_linked_and_every_link_resolves():
    lines = README.read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move detail into a guide under docs/"
    linked = {target.split("#")[0] for target in MARKDOWN_LINK.findall(README.read_text())
              if target.startswith("docs/")}
    assert linked == {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}
    assert list(dead_markdown_links(markdown_files())) == []


def test_the_link_check_reports_links_to_missing_files(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("[a](docs/a.md), [gone](docs/gone.md), [site](https://example.com/x.md)\n")
    (tmp_path / "docs" / "a.md").write_text("# A page, for you\n\n[back](../README.md#top) [here](#a-page-for-you) "
                                            "[there](#nowhere) [none](b.md#part)\n")
    assert list(dead_markdown_links(markdown_files(tmp_path), tmp_path)) == [
        "README.md: link to docs/gone.md: no such file",
        "docs/a.md: link to ../README.md#top: no such heading",
        "docs/a.md: link to #nowhere: no such heading",
        "docs/a.md: link to b.md#part: no such file",
    ]


def test_every_path_of_ours_the_guides_name_exists():
    """A backticked path into one of our folders (`spec/startup.py`, `tests/e2e/`) names something that is there."""
    ours = {name.split(".")[0] for name in LAYERS} | {"docs", "environments", "examples", "images", "tests", ".ci"}
    missing = [f"{file.relative_to(ROOT)}: {path}" for file in markdown_files()
               for path in re.findall(r"`([^`\s<>*{}]+/[^`\s<>*{}]*)`", file.read_text())
               if path.split("/")[0] in ours and not (ROOT / path).exists()]
    assert missing == []
