"""`llmplane capacity <env> --trace FILE [--plot PNG]`: three rows and the attribution, a PNG, clear errors."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from llmplane.capacity.trace import ATTRIBUTION, azure_trace_path
from llmplane.stacks.cli import main


def write_excerpt(folder: Path, kind: str, rows: int) -> Path:
    """The first `rows` requests of an Azure trace, cut at run time (never stored in the repository)."""
    source = azure_trace_path(kind)
    assert source.is_file(), f"the Azure traces are not in {source.parent} (set LLMPLANE_TRACES to their folder)"
    out = folder / f"{kind}-excerpt.csv"
    with source.open(newline="") as src, out.open("w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        for i, row in enumerate(reader):
            if i > rows:
                break
            writer.writerow(row)
    return out


def write_synthetic(folder: Path) -> Path:
    """Two minutes of steady traffic in the Azure format."""
    out = folder / "synthetic.csv"
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i in range(240):
        seconds = i * 0.5
        lines.append(f"2023-11-16 18:{15 + int(seconds // 60):02d}:{seconds % 60:010.7f},800,40")
    out.write_text("\n".join(lines) + "\n")
    return out


def rows_of(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in
            ("policy", "static", "oracle")]


def test_prints_policy_static_and_oracle_with_the_attribution(capsys, tmp_path):
    trace = write_excerpt(tmp_path, "conv", 600)
    code = main(["capacity", "prod", "--trace", str(trace), "--trace-credit", "azure-2023"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert rows_of(out) == ["policy", "static", "oracle"]
    assert ATTRIBUTION in out
    assert "llama-3-8b:1.0.0" in out and "GPU-hours" in out and "TTFT p99" in out
    bound = next(line for line in out.splitlines() if line.startswith("bound: "))
    assert re.search(r"pays the \d+ s start-up of each replica it adds on a node that holds everything", bound)
    assert "x oracle)" in bound


def test_a_trace_of_unknown_source_is_credited_by_its_name_not_as_azures(capsys, tmp_path):
    trace = write_synthetic(tmp_path)
    assert main(["capacity", "prod", "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "Azure" not in out
    assert out.rstrip().splitlines()[-1] == "Trace: synthetic.csv (name its source and licence with --trace-credit)"
    assert main(["capacity", "prod", "--trace", str(trace), "--trace-credit", "load test, ours, CC0"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == "Trace: load test, ours, CC0"


def test_the_azure_trace_files_carry_their_attribution_unasked(capsys):
    assert main(["capacity", "prod", "--trace", str(azure_trace_path("code"))]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == (
        'Trace: Azure LLM inference trace 2023, Azure Public Dataset (CC-BY 4.0); Patel et al., "Splitwise: '
        'Efficient generative LLM inference using phase splitting", ISCA 2024.')


def test_synthetic_trace_and_a_named_version(capsys, tmp_path):
    trace = write_synthetic(tmp_path)
    code = main(["capacity", "prod", "--trace", str(trace), "--model", "llama-3-8b", "--version", "1.1.0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert rows_of(out) == ["policy", "static", "oracle"]
    assert "llama-3-8b:1.1.0" in out


def test_plot_writes_a_png(capsys, tmp_path):
    trace = write_synthetic(tmp_path)
    png = tmp_path / "capacity.png"
    code = main(["capacity", "dev", "--trace", str(trace), "--plot", str(png)])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_missing_trace_is_a_clear_error(capsys, tmp_path):
    code = main(["capacity", "prod", "--trace", str(tmp_path / "nope.csv")])
    out, err = capsys.readouterr()
    assert code == 2
    assert f"trace file {tmp_path / 'nope.csv'} does not exist" in err
    assert out == ""


def test_unknown_model_and_version_are_clear_errors(capsys, tmp_path):
    trace = write_synthetic(tmp_path)
    assert main(["capacity", "prod", "--trace", str(trace), "--model", "gpt-5"]) == 2
    assert "environment 'prod' has no model 'gpt-5' (models: llama-3-8b, llama-3-70b)" in capsys.readouterr().err
    assert main(["capacity", "prod", "--trace", str(trace), "--version", "9.9.9"]) == 2
    assert "model 'llama-3-8b' deploys no version '9.9.9' (deployed: 1.0.0, 1.1.0)" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "problem"), [
    ("missing/capacity.png", "does not exist; create it first"),
    ("capacity.pdf", "unsupported file type '.pdf'; use .png"),
    ("folder.png", "is a directory; give a file name"),
])
def test_a_plot_that_cannot_be_written_is_one_line_exit_4_before_the_replay(capsys, tmp_path, name, problem):
    trace = write_synthetic(tmp_path)
    (tmp_path / "folder.png").mkdir()
    code = main(["capacity", "dev", "--trace", str(trace), "--plot", str(tmp_path / name)])
    out, err = capsys.readouterr()
    assert code == 4
    assert out == "", "refused before the table"
    assert err.count("\n") == 1 and problem in err
    assert not (tmp_path / "missing").exists(), "no folder was created"
