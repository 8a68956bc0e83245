"""Section timings of executed notebooks (qlab_workshop.teaching, `python -m qlab sections`)."""

import json
import subprocess
import sys

import pytest

from qlab_workshop import teaching


def _cell(kind, source, start=None, end=None):
    cell = {"cell_type": kind, "source": source, "metadata": {}}
    if start is not None:
        cell["metadata"]["execution"] = {
            "iopub.execute_input": f"2026-11-30T00:00:{start:06.3f}Z",
            "shell.execute_reply": f"2026-11-30T00:00:{end:06.3f}Z",
        }
    if kind == "code":
        cell["outputs"], cell["execution_count"] = [], 1
    return cell


def _notebook(tmp_path, cells, name="07_demo.ipynb"):
    path = tmp_path / name
    path.write_text(
        json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    return path


def test_sections_sum_their_code_cells(tmp_path):
    path = _notebook(
        tmp_path,
        [
            _cell("markdown", "# 07 · Demo"),
            _cell("code", "import os", 0, 1.5),
            _cell("markdown", "## Setup"),
            _cell("code", "x = 1", 2, 2.25),
            _cell("code", "y = 2", 3, 4),
            _cell("markdown", "Look for: nothing"),
            _cell("code", "", None),
            _cell("markdown", "Look for: a line\n\n## Time it\n\nThen this."),
            _cell("code", "z = 3", 5, 7),
            _cell("markdown", "## Summary"),
        ],
    )
    times = teaching.section_times(path)
    assert times.to_dict("list") == {
        "notebook": ["07_demo"] * 4,
        "section": ["(title)", "Setup", "Time it", "Summary"],
        "code_cells": [1, 2, 1, 0],
        "seconds": [1.5, 1.25, 2.0, 0.0],
    }


def test_an_unexecuted_notebook_is_refused_by_name(tmp_path):
    path = _notebook(tmp_path, [_cell("markdown", "## Setup"), _cell("code", "x = 1")])
    with pytest.raises(ValueError, match="07_demo.ipynb: code cell 1 has no execution timing"):
        teaching.section_times(path)


def test_the_command_prints_totals_and_refuses_a_non_notebook(tmp_path, capsys):
    from qlab.__main__ import main

    path = _notebook(tmp_path, [_cell("markdown", "## Setup"), _cell("code", "x = 1", 0, 2)])
    assert main(["sections", str(path)]) == 0
    assert "all 1 notebooks: 2.0 s" in capsys.readouterr().out
    assert main(["sections", str(tmp_path / "missing.ipynb")]) == 2
    assert "no such notebook file" in capsys.readouterr().err
    bad = tmp_path / "notes.ipynb"
    bad.write_text("not json")
    done = subprocess.run(
        [sys.executable, "-m", "qlab", "sections", str(bad)], capture_output=True, text=True
    )
    assert (
        done.returncode == 2
        and done.stderr.startswith("error: ")
        and len(done.stderr.splitlines()) == 1
    )
