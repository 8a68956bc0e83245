"""A non-editable install has everything: the published tables ship as package data."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qlab.infra import tables

ROOT = Path(__file__).resolve().parents[1]


def test_published_tables_ship_inside_the_wheel(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "qlab", source / "qlab", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("qlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for table in tables.published_names():
        assert f"qlab/published/{table}.csv" in names
    assert "qlab/published/README.md" in names
    assert {
        "qlab/analysis/grid.py",
        "qlab/intmath/engine.py",
        "qlab/perf/bench.py",
        "qlab/plots/figure.py",
        "qlab/commands/reproduce.py",
    } <= names


def test_published_table_reads_through_importlib_resources():
    table = tables.published()
    assert "source" in table.columns and len(table) == 4
    assert tables.published_names() == [
        "optimizing-tf-models-with-quantization",
        "tfmot-post-training-integer-quantization",
    ]
    imagenet = tables.published("tfmot-post-training-integer-quantization")
    assert (
        imagenet.family.str.startswith(("MobileNet", "ResNet", "Inception")).all()
        and imagenet.source.notna().all()
    )
    with pytest.raises(FileNotFoundError, match="known: .'optimizing-tf-models-with-quantization'"):
        tables.published("nope")
