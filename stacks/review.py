"""`llmplane diff <env> --base <ref>`: what a pull request changes in an environment, as Markdown for a PR comment.

Both sides are planned offline by the same command (`llmplane plan <env> --json`): the base from a pristine
export of `<ref>` (its own code and environment files), the head from the working tree. Resources are matched by
URN and compared property by property; policy verdicts that appear or disappear are listed too.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .diff import ResourceChange, diff_plans
from .environments import PROJECT_ROOT
from .plan import PlannedResource

SYMBOL = {"added": "+", "removed": "-", "changed": "~", "replaced": "+-"}
MAX_VALUE = 60


class DiffError(Exception):
    """A side could not be planned; the message says which and why."""


@dataclass(frozen=True)
class Side:
    """One side's plan, as `llmplane plan --json` printed it."""

    resources: list[PlannedResource]
    policies: list[dict[str, Any]]


@dataclass(frozen=True)
class Review:
    """The difference between base and head for one environment."""

    environment: str
    base: str
    changes: list[ResourceChange]
    engines: list[str]
    new_violations: list[dict[str, Any]]
    fixed_violations: list[dict[str, Any]]


def plan_tree(root: Path, environment: str) -> Side:
    """Plan an environment with the code and environment files found under `root`."""
    done = subprocess.run([sys.executable, "-m", "llmplane.stacks.cli", "plan", environment, "--json"], cwd=root,
                          env=_env_for(root), capture_output=True, text=True, timeout=600, check=False)
    if done.returncode not in (0, 3) or not done.stdout.strip().startswith("{"):
        raise DiffError(f"planning {environment} in {root} failed (exit {done.returncode}):\n"
                        f"{(done.stderr or done.stdout).strip()[-2000:]}")
    document = json.loads(done.stdout)
    resources = [PlannedResource(r["urn"], r["type"], r["name"], r["parent"], r["inputs"])
                 for r in document["resources"]]
    return Side(resources, document.get("policies", []))


def _env_for(root: Path) -> dict[str, str]:
    """The tree's own packages first on the path, so the base is planned by the base's code."""
    return {**os.environ, "PYTHONPATH": str(root)}


def export_ref(ref: str, target: Path, repo: Path = PROJECT_ROOT) -> None:
    """A pristine copy of the tree at `ref` (no working-tree edits, no untracked files). The ref must name a
    commit; it is resolved first, so nothing the user typed can reach git as an option."""
    if ref.startswith("-"):
        raise DiffError(f"--base {ref!r} is not a git ref (it starts with '-'); give a branch, tag or commit, "
                        "e.g. --base origin/main")
    resolved = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
                              cwd=repo, capture_output=True, text=True, check=False)
    if resolved.returncode != 0:
        raise DiffError(f"--base {ref!r} does not name a commit in {repo}; give a branch, tag or commit, "
                        "e.g. --base origin/main (fetch it first if it is remote)")
    archive = subprocess.run(["git", "archive", "--format=tar", resolved.stdout.strip()], cwd=repo,
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise DiffError(f"git cannot read {ref!r}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)


def _verdict_key(violation: dict[str, Any]) -> tuple[str, str, str, str]:
    return violation["policy"], violation["enforcement"], violation["urn"], violation["message"]


def review(environment: str, base: str, head_root: Path = PROJECT_ROOT) -> Review:
    """Plan base and head and compare them."""
    with tempfile.TemporaryDirectory(prefix="llmplane-base-") as tmp:
        export_ref(base, Path(tmp))
        before = plan_tree(Path(tmp), environment)
    after = plan_tree(head_root, environment)
    old = {_verdict_key(v): v for v in before.policies}
    new = {_verdict_key(v): v for v in after.policies}
    return Review(
        environment=environment,
        base=base,
        changes=diff_plans(before.resources, after.resources),
        engines=engine_changes(before.resources, after.resources),
        new_violations=[v for key, v in new.items() if key not in old],
        fixed_violations=[v for key, v in old.items() if key not in new],
    )


WEIGHTS_ANNOTATION = "llmplane.dev/weights-sha256"
RELEASE_ANNOTATION = "llmplane.dev/engine-release"


def _engines(resources: list[PlannedResource]) -> dict[tuple[str, str], tuple[str, str, tuple[str, ...]]]:
    """(model, version) -> (engine release, weights sha256, clusters) of every vLLM Deployment in a plan."""
    found: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {}
    for resource in resources:
        metadata = resource.inputs.get("metadata", {}) if resource.type == "kubernetes:apps/v1:Deployment" else {}
        annotations, labels = metadata.get("annotations", {}), metadata.get("labels", {})
        if RELEASE_ANNOTATION not in annotations:
            continue
        key = (labels["llmplane.dev/model"], labels["llmplane.dev/model-version"])
        cluster = resource.name.split(f"-{key[0]}-")[0]
        release, weights, clusters = found.get(key, (annotations[RELEASE_ANNOTATION],
                                                     annotations[WEIGHTS_ANNOTATION], ()))
        found[key] = (release, weights, tuple(sorted({*clusters, cluster})))
    return found


def engine_changes(before: list[PlannedResource], after: list[PlannedResource]) -> list[str]:
    """What a change does to the engines, one line per model version: a new version that serves another deployed
    version's weights on another release is an engine upgrade and nothing else; a version whose release changes
    in place says from which to which, and whether its weights stayed."""
    old, new = _engines(before), _engines(after)
    lines = []
    for (model, version), (release, weights, clusters) in sorted(new.items()):
        where = ", ".join(clusters)
        if (model, version) in old:
            was, was_weights, _ = old[(model, version)]
            if was != release:
                same = "weights unchanged" if was_weights == weights else "new weights too"
                lines.append(f"- `{model}` {version} ({where}): vLLM {was} → {release}, {same}")
            continue
        twins = sorted(v for (m, v), (r, w, _) in new.items() if m == model and v != version and w == weights)
        if twins:
            twin = twins[0]
            lines.append(f"- `{model}` {version} ({where}): new, the weights of {twin} (sha256 {weights[:12]}…) on "
                         f"vLLM {release}, where {twin} runs {new[(model, twin)][0]}: "
                         + ("an engine upgrade only" if release != new[(model, twin)][0] else "same engine"))
        else:
            lines.append(f"- `{model}` {version} ({where}): new, on vLLM {release}")
    return lines


def _cell(value: Any) -> str:
    text = "*(none)*" if value is None else f"`{json.dumps(value) if not isinstance(value, str) else value}`"
    text = text.replace("|", "\\|")
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 4] + "…`"


def _changed_lines(before: Any, after: Any) -> tuple[str, str] | None:
    """For a multi-line text (an inline script), the lines it lost and the lines it gained, as table cells: a
    rollout step in the gateway's version split reads as its weight lines, not as two whole scripts."""
    if not (isinstance(before, str) and isinstance(after, str) and ("\n" in before or "\n" in after)):
        return None
    delta = list(difflib.ndiff(before.splitlines(), after.splitlines()))

    def cell(sign: str) -> str:
        lines = [line[2:].strip() for line in delta if line.startswith(sign)]
        return "<br>".join(_cell(line) for line in lines) if lines else "*(none)*"

    return cell("- "), cell("+ ")


def _row(change: Any) -> str:
    cells = _changed_lines(change.before, change.after) or (_cell(change.before), _cell(change.after))
    return f"| `{change.path}` | {cells[0]} | {cells[1]} |"


def markdown(result: Review) -> str:
    """The review as Markdown: a summary line, one section per changed resource, then policy verdict changes."""
    counts = {kind: sum(1 for c in result.changes if c.kind == kind) for kind in SYMBOL}
    lines = [f"### llmplane diff `{result.environment}` against `{result.base}`", ""]
    if not result.changes and not result.new_violations and not result.fixed_violations:
        return "\n".join([*lines, "No changes."])
    lines.append(", ".join(f"**{counts[k]}** {k}" for k in ("changed", "replaced", "added", "removed")))
    if result.engines:
        lines += ["", "#### Engines", "", *result.engines]
    for change in result.changes:
        lines += ["", f"`{SYMBOL[change.kind]}` **{change.kind}** `{change.urn.split('::')[-1]}` ({change.type})"]
        if change.properties:
            lines += ["", "| property | before | after |", "|---|---|---|"]
            lines += [_row(p) for p in change.properties]
    for title, items in (("New policy violations", result.new_violations),
                         ("Resolved policy violations", result.fixed_violations)):
        if items:
            lines += ["", f"#### {title}", ""]
            lines += [f"- **{v['policy']}** ({v['enforcement']}) `{v['urn'].split('::')[-1]}`: {v['message']}"
                      for v in items]
    return "\n".join(lines)
