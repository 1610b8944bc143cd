"""The last lines of `make up`: what the update changed, where the manifests are.

`pulumi up` prints every resource; after a long run the two facts a user
wants are buried. Changes come from the newest `pulumi stack history`
entry, manifests from counting the render directory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# Engine operation names as they appear in resourceChanges.
_WORDS = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
    "same": "unchanged",
}


def describe_changes(changes: dict[str, int]) -> str:
    ordered = [op for op in _WORDS if op in changes] + sorted(set(changes) - set(_WORDS))
    parts = [f"{changes[op]} {_WORDS.get(op, op)}" for op in ordered if changes[op]]
    return ", ".join(parts) or "nothing"


def latest_changes(stack: str) -> tuple[str, dict[str, int]]:
    """Result and resource changes of the stack's newest update."""
    listed = subprocess.run(
        ["pulumi", "stack", "history", "--stack", stack, "--json", "--page-size", "1"],
        capture_output=True, text=True, check=True,
    )
    history = json.loads(listed.stdout or "[]")
    if not history:
        return "none", {}
    newest = history[0]
    return newest.get("result", "unknown"), newest.get("resourceChanges") or {}


def describe_manifests(render_dir: Path) -> str:
    files = sorted(render_dir.rglob("*.yaml")) if render_dir.is_dir() else []
    if not files:
        return f"no manifests in {render_dir}"
    folders: dict[str, int] = {}
    for path in files:
        folder = path.parent.relative_to(render_dir).as_posix()
        folders[folder] = folders.get(folder, 0) + 1
    per_folder = ", ".join(f"{name}: {count}" for name, count in folders.items())
    noun = "file" if len(files) == 1 else "files"
    return f"{len(files)} {noun} in {render_dir}/ ({per_folder})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.summary", description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--render-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    result, changes = latest_changes(args.stack)
    print(f"\nstack {args.stack}: last update {result}: {describe_changes(changes)}")
    print(f"manifests: {describe_manifests(args.render_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
