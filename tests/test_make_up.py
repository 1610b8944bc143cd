"""`make up`, the README's main job, refuses an invalid environment before touching anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The tracked project files (mtimes kept, so make sees the virtualenv as current), sharing .venv and the built
    CLI; the copy's bootstrap writes its launchers into its own .tools/bin, never into the project's."""
    assert shutil.which("make"), "GNU make is missing: apt-get install make"
    assert (ROOT / ".tools" / "bin" / "pulumi").exists(), "the toolchain is missing: run `make test`"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    copy = tmp_path / "llmplane"
    for name in files:
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    # The copy shares the project's virtualenv: its pyproject.toml must not look newer than the venv's stamp, or
    # make would reinstall the project in editable mode from the copy, pointing the shared venv at a temp folder.
    stamp = (ROOT / ".venv" / ".installed").stat().st_mtime
    os.utime(copy / "pyproject.toml", (stamp - 1, stamp - 1))
    (copy / ".tools" / "bin").mkdir(parents=True)
    (copy / ".tools" / "bin" / "pulumi").symlink_to((ROOT / ".tools" / "bin" / "pulumi").resolve())
    return copy


def test_weights_summing_to_90_stop_make_up_in_one_screen_and_touch_nothing(project_copy: Path):
    env_file = project_copy / "environments" / "Pulumi.local.yaml"
    env_file.write_text(env_file.read_text().replace("weight: 100", "weight: 90"))
    env = {**os.environ, "PYTHONPATH": str(project_copy)}
    env.pop("PULUMI_BACKEND_URL", None)
    done = subprocess.run(["make", "-s", "up"], cwd=project_copy, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "models.llama-3-8b.versions: traffic weights sum to 90, they must sum to 100" in output
    assert "Traceback" not in output
    assert len(output.splitlines()) <= 25, output
    assert not (project_copy / "build").exists(), "nothing was rendered"
    assert not (project_copy / ".state").exists(), "the state was not touched"
