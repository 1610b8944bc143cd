"""The environment loader never tracebacks: hostile or broken files end with exit 2, the file's path and a fix,
before anything is built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from llmplane.stacks.cli import main

VALID = (Path(__file__).resolve().parents[1] / "environments" / "Pulumi.local.yaml").read_text()


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], environment: str = "bad") -> tuple[int, str]:
    code = main(["validate", environment, "--environments", str(tmp_path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def write(tmp_path: Path, content: str | bytes, environment: str = "bad") -> Path:
    path = tmp_path / f"Pulumi.{environment}.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8))

CASES = {
    "a YAML syntax error": ("config:\n  llmplane:owner: [unclosed\n", "YAML syntax error at line 3"),
    "a number as a key": ("config:\n  1.5: x\n", "is not a name"),
    "a block as a key": ("config:\n  ? [a, b]\n  : x\n", "is not a name"),
    "an alias bomb": (f"config:\n  llmplane:owner: x\n{BOMB}", "YAML aliases"),
    "very deep nesting": ("config:\n  x: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 32 levels"),
    "bytes that are not UTF-8": (b"config:\n  llmplane:owner: \xff\xfe\n", "is not UTF-8"),
    "a list instead of a mapping": ("- config\n", "`config:` must be a mapping"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_broken_file_is_exit_2_with_the_file_and_a_fix(tmp_path, capsys, case):
    content, expected = CASES[case]
    path = write(tmp_path, content)
    code, output = run(tmp_path, capsys)
    assert code == 2, output
    assert expected in output, output
    assert str(path) in output
    assert "Traceback" not in output and "<unicode string>" not in output


def test_a_directory_in_place_of_the_file(tmp_path, capsys):
    (tmp_path / "Pulumi.bad.yaml").mkdir()
    code, output = run(tmp_path, capsys)
    assert code == 2 and "is not a file" in output and "Pulumi.bad.yaml" in output


def test_a_very_long_environment_name(tmp_path, capsys):
    code, output = run(tmp_path, capsys, environment="e" * 5000)
    assert code == 2
    assert "is not valid; use lowercase letters" in output and len(output) < 400


def test_anchors_for_sharing_a_block_still_work(tmp_path, capsys):
    shared = VALID.replace("      pools:\n", "      pools: &pools\n", 1)
    write(tmp_path, shared, environment="local")
    code, output = run(tmp_path, capsys, environment="local")
    assert code == 0, output
