"""`python -m qlab reproduce` writes the tables and models; a seed gives the same table twice."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from qlab import artifacts
from qlab.analysis import per_layer
from qlab.tflite.runtime import Runtime


def run_cli(*args, env_cache=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if env_cache:
        env["QLAB_CACHE"] = str(env_cache)
    return subprocess.run(
        [sys.executable, "-m", "qlab", "reproduce", "--runs", "50", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A run in a new process that retrains everything (--no-cache) and leaves the cache alone."""
    out = tmp_path_factory.mktemp("results")
    unused = tmp_path_factory.mktemp("unused-cache")
    result = run_cli("--out", str(out), "--no-cache", env_cache=unused)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(unused.iterdir()), "--no-cache wrote to the cache"
    return out, result.stdout


def test_writes_tables_and_models(first_run):
    out, stdout = first_run
    results = pd.read_csv(out / "results.csv")
    assert list(zip(results.training, results["mode"])) == [
        (t, m.name) for t, m in artifacts.conversions()
    ]
    for column in ("training", "mode", "accuracy", "latency_us", "loop_ms", "size_bytes"):
        assert results[column].notna().all(), column
    for row in results.itertuples():
        tflite = (out / "models" / f"{row.training}-{row.mode}.tflite").read_bytes()
        assert len(tflite) == row.size_bytes
        Runtime(tflite)  # every measured model loads as written
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison["mode"]) == [
        "float32",
        "dynamic_range",
        "full_integer",
        "integer_only",
        "float16",
    ]
    assert comparison.loc[comparison["mode"] == "integer_only", "accuracy_pub"].item() == 26.12
    md = (out / "results.md").read_text()
    assert "Beside the published table" in md and "accuracy_pub" in md
    assert (
        "integer_only_uint8" in stdout
        and "accuracy_delta" in stdout
        and "10 models under" in stdout
    )


def test_writes_layer_errors_of_every_quantized_model_and_the_figures(first_run):
    out, _ = first_run
    quantized = [(t, m.name) for t, m in artifacts.conversions() if m.weights == "int8"]
    assert len(quantized) == 8
    for training, mode in quantized:
        table = pd.read_csv(out / f"layer_errors_{training}-{mode}.csv")
        assert list(table.columns[: len(per_layer.COLUMNS)]) == list(per_layer.COLUMNS)
        views = {"local", "accumulated"} | ({"qat"} if training == "qat" else set())
        assert set(table["view"]) == views, (training, mode)
        assert table["mean_squared_error"].notna().all()
    for name in (
        "layer_errors_float-full_integer",
        "error_growth_float",
        "qat_vs_deployed",
        "weight_histograms",
        "rounding_vs_clipping",
    ):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000, name
    assert not list(out.glob("layer_errors_*-float*.csv"))  # float32/float16: nothing quantized


def test_retrained_from_the_same_seed_the_files_are_the_same_bytes(first_run):
    """The run above retrained in its own process; this process's files come from the suite's cache
    (trained by whichever test asked first): the same bytes, so the same accuracy, size and
    errors."""
    out, _ = first_run
    cached = artifacts.convert_all(progress=False)
    assert len(cached) == len(list((out / "models").glob("*.tflite"))) == 10
    for (training, mode), tflite in cached.items():
        assert (out / "models" / f"{training}-{mode}.tflite").read_bytes() == tflite, (
            training,
            mode,
        )
