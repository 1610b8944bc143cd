"""The components' reference documentation, generated from their docstrings with pdoc, and checked.

    python -m llmplane.toolchain.docs [--out build/docs]
    python -m llmplane.toolchain.docs --write-architecture    redraw README.md's architecture picture from the code

These checks fail the build (exit 1), each naming the page and the reference:
- a link in the generated HTML whose page or anchor does not exist;
- a docstring reference in backticks to one of our modules or names (e.g. `facts.gpus.GPU_MEMORY_GB`,
  `GpuCluster.network`) that pdoc could not resolve, so the reader would get plain text instead of a link;
- README.md's architecture picture differing from the one drawn from the code (toolchain/architecture.py);
- a relative link in README.md or docs/*.md to a file or heading that does not exist.
"""

from __future__ import annotations

import argparse
import html.parser
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag

import pdoc
import pdoc.render
from llmplane.toolchain.architecture import ROOT, ArchitectureError, render, stale, with_block

PACKAGES = ("components", "facts")
"""What another team's program uses: the components and the facts they read."""
OUR_ROOTS = ("components", "facts", "capacity", "monitoring", "stacks")
README = ROOT / "README.md"
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")


class _Anchors(html.parser.HTMLParser):
    """The ids a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")


def build(out: Path) -> list[Path]:
    """Render the reference into `out`; the pages written."""
    pdoc.render.configure(docformat="markdown", show_source=False,
                          footer_text="llmplane: LLM inference as infrastructure code")
    with warnings.catch_warnings():
        # pulumi.Input's alias names Output, Input and T as strings pdoc cannot evaluate; shown as written.
        warnings.filterwarnings("ignore", message=r"Error parsing type annotation .*Import of (Output|Input|T) failed")
        pdoc.pdoc(*PACKAGES, output_directory=out)
    return sorted(out.rglob("*.html"))


def broken_links(out: Path, pages: list[Path]) -> Iterator[str]:
    """Links between our pages that lead nowhere."""
    parsed: dict[Path, _Anchors] = {}
    for page in pages:
        parser = _Anchors()
        parser.feed(page.read_text())
        parsed[page.resolve()] = parser
    for page, parser in parsed.items():
        for href in parser.links:
            if re.match(r"^[a-z]+:", href):
                continue  # another site
            path, anchor = urldefrag(href)
            target = (page.parent / path).resolve() if path else page
            if target not in parsed:
                yield f"{page.relative_to(out.resolve())}: link to {href}: no such page"
            elif anchor and anchor not in parsed[target].ids:
                yield f"{page.relative_to(out.resolve())}: link to {href}: no such anchor"


def unresolved_references(out: Path, pages: list[Path]) -> Iterator[str]:
    """Backticked references to our own names that pdoc rendered as plain code: broken in the docs."""
    for page in pages:
        text = page.read_text()
        for match in re.finditer(r"<code>([A-Za-z_][A-Za-z0-9_.]*)</code>", text):
            name = match.group(1)
            if "." in name and name.split(".")[0] in OUR_ROOTS and not _linked(text, match.start()):
                yield f"{page.relative_to(out)}: `{name}` does not resolve to a documented name"


def _linked(text: str, start: int) -> bool:
    """Whether the <code> element at `start` sits inside a link."""
    before = text[:start]
    return before.rfind("<a ") > before.rfind("</a>")


def architecture_problems(readme: Path = README) -> list[str]:
    """What is wrong with the README's architecture picture: [] when it is the one drawn from the code."""
    try:
        problem = stale(readme.read_text(), render())
    except ArchitectureError as error:
        return [f"architecture: {error}"]
    return [problem] if problem else []


def write_architecture(readme: Path = README) -> None:
    """Put the picture drawn from the code between the README's markers."""
    readme.write_text(with_block(readme.read_text(), render()))


def markdown_files(root: Path = ROOT) -> list[Path]:
    """The hand-written documentation: the README and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def dead_markdown_links(files: list[Path], root: Path = ROOT) -> Iterator[str]:
    """Relative links in Markdown files to files, or headings of Markdown files, that do not exist (links to other
    sites are not followed)."""
    for file in files:
        for target in MARKDOWN_LINK.findall(file.read_text()):
            path, anchor = urldefrag(target)
            if re.match(r"^[a-z]+:", target):
                continue
            page = (file.parent / path) if path else file
            if not page.exists():
                yield f"{file.relative_to(root)}: link to {target}: no such file"
            elif anchor and page.suffix == ".md" and anchor not in _heading_anchors(page):
                yield f"{file.relative_to(root)}: link to {target}: no such heading"


def _heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a Markdown page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/docs"))
    parser.add_argument("--write-architecture", action="store_true",
                        help="redraw README.md's architecture picture from the code, and build nothing")
    args = parser.parse_args(argv)
    if args.write_architecture:
        try:
            write_architecture()
        except ArchitectureError as error:
            print(f"docs: architecture: {error}", file=sys.stderr)
            return 1
        print(f"docs: the architecture picture in {README.name} is drawn from the code")
        return 0
    out = args.out
    pages = build(out)
    problems = [*broken_links(out, pages), *unresolved_references(out, pages), *architecture_problems(),
                *dead_markdown_links(markdown_files())]
    for problem in problems:
        print(f"docs: {problem}", file=sys.stderr)
    if problems:
        print(f"docs: {len(problems)} problem(s); fix what is named above", file=sys.stderr)
        return 1
    print(f"docs: {len(pages)} pages in {out}/ (open {out}/index.html), every reference resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
