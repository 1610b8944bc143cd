"""checkov, the Kubernetes manifest scanner the render test runs: installed once into a virtualenv of its own
(it pins libraries the Pulumi SDKs cannot share), cached by version outside the clone.

    python -m llmplane.toolchain.checkov     # install if missing; print its path
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llmplane.toolchain.gotools import cache_root

VERSION = "3.3.30"


def path() -> Path:
    return cache_root() / "checkov" / VERSION / "bin" / "checkov"


def install() -> Path:
    binary = path()
    if binary.exists():
        return binary
    venv = binary.parent.parent
    print(f"checkov: installing checkov=={VERSION} into {venv}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q",
                    f"checkov=={VERSION}"], check=True)
    return binary


if __name__ == "__main__":
    print(install())
