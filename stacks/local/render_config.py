"""`make render`: the stack's config with every on-prem cluster rendering to a folder instead of deploying.

GitOps users keep manifests in git and let their own controller apply them. The copy is written under
`.state/render/`, the render runs with a file backend of its own there, so rendering never touches the
state of the deployed stack.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TARGET_KEYS = ("kubeconfigSecret", "kubeconfigFile")


def render_config(config: dict, render_dir: str) -> dict:
    """The stack config with each on-prem cluster's target replaced by `render_dir/<cluster>`."""
    for cluster in config.get("config", {}).get("llmplane:clusters", []):
        if cluster.get("cloud") != "onprem":
            continue
        for key in TARGET_KEYS:
            cluster.pop(key, None)
        cluster["renderDir"] = f"{render_dir}/{cluster['name']}"
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmplane.stacks.local.render_config",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--render-dir", required=True, help="project-relative folder, e.g. build/local")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    source = ROOT / "environments" / f"Pulumi.{args.stack}.yaml"
    config = render_config(yaml.safe_load(source.read_text()), args.render_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(yaml.safe_dump(config, sort_keys=False))


if __name__ == "__main__":
    main()
