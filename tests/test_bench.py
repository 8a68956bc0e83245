"""The latency grid, the peaks per data type, the size breakdown and the work floor: structure,
exactness, bad input, the CPU beside every latency. No assertion here is about speed, nor about
which data type is faster: timings are for the bench command, and which wins is the CPU's."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tolerance

from qlab import artifacts
from qlab.conversion import modes
from qlab.perf import bench, cpu, sizes, work
from qlab.training import fit

QUICK_PEAKS = bench.BenchConfig(rounds=2, block_ms=1.0, warmup=1, loop=False)


@pytest.fixture(scope="module")
def two_models(calibration):
    return {
        ("float", "float32"): artifacts.quantized(fit.TrainConfig(), "float32", progress=False),
        ("float", "integer_only"): artifacts.quantized(
            fit.TrainConfig(), "integer_only", calibration, progress=False
        ),
    }


@pytest.fixture(scope="module")
def peak_table():
    return work.peaks(("xnnpack", "builtin"), QUICK_PEAKS)


def test_grid_rows_counts_and_ratios(two_models, digits):
    config = bench.BenchConfig(
        kernels=("xnnpack", "reference"),
        threads=(1,),
        batches=(1, 3),
        rounds=2,
        block_ms=0.2,
        warmup=1,
        loop=True,
    )
    frame = bench.run(two_models, digits.x_test, config, progress=False)
    assert len(frame) == 2 * 2 * 2  # models x kernels x batches
    assert (frame["count"] >= config.rounds).all()
    assert (frame.p10_us <= frame.median_us).all() and (frame.median_us <= frame.p90_us).all()
    base = frame[frame["mode"] == "float32"]
    np.testing.assert_array_equal(
        base.ratio_vs_float32, 1.0
    )  # float32 over itself, round by round: x / x
    np.testing.assert_array_equal(
        frame.per_image_us, frame.median_us / frame.batch
    )  # the same division
    assert (
        frame[frame.batch == 1].loop_ms.notna().all()
        and frame[frame.batch == 3].loop_ms.isna().all()
    )
    table = bench.summary(frame, 1)
    assert list(table.columns) == ["xnnpack/1t", "reference/1t"] and "[" in table.iloc[0, 0]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kernels": ("gpu",)}, "valid: xnnpack, builtin, reference"),
        ({"threads": (0,)}, "valid: 1"),
        ({"threads": (999,)}, "valid: 1"),
        ({"batches": (0,)}, "batch of 1 or more"),
        ({"rounds": 0}, "nothing would be timed"),
    ],
)
def test_bad_settings_are_refused(change, message):
    import dataclasses

    with pytest.raises(ValueError, match=message):
        dataclasses.replace(bench.BenchConfig(), **change).check()


def test_batch_larger_than_the_test_set(two_models, digits):
    with pytest.raises(ValueError, match="larger than the 450 test images"):
        bench.run(two_models, digits.x_test, bench.BenchConfig(batches=(451,)), progress=False)


@pytest.mark.parametrize("mode", list(modes.MODES))
def test_size_breakdown_adds_up_exactly(mode, calibration):
    tflite = artifacts.quantized(fit.TrainConfig(), mode, calibration, progress=False)
    parts = sizes.breakdown(tflite)
    assert sum(parts.values()) == len(tflite)
    assert all(v >= 0 for v in parts.values())
    weights = {k: v for k, v in parts.items() if k.startswith("weights_")}
    expected_type = {"float32": "weights_float32", "float16": "weights_float16"}.get(
        mode, "weights_int8"
    )
    assert expected_type in weights
    if modes.get(mode).weights == "int8" and mode != "dynamic_range":
        # 32,640 kernel weights of one byte each, plus a 4-byte length prefix per kernel (5 layers)
        assert weights == {"weights_int8": 32_640 + 5 * 4}


def test_byte_map_refuses_double_counting():
    byte_map = sizes._ByteMap(10)
    byte_map.claim("a", 0, 5)
    with pytest.raises(AssertionError, match="claimed by b and a"):
        byte_map.claim("b", 4, 6)


def test_macs_of_the_digits_cnn(two_models):
    table = work.macs(two_models[("float", "integer_only")])
    assert list(table.macs) == [
        6 * 6 * 64 * 9,
        4 * 4 * 32 * 9 * 64,
        2 * 2 * 32 * 9 * 32,
        128 * 32,
        32 * 10,
    ]
    assert table.macs.sum() == 356_928
    assert (work.macs(two_models[("float", "float32")]).macs == table.macs).all()


def test_peaks_of_both_data_types_on_both_probes(peak_table):
    assert len(peak_table) == 2 * 2 * 2  # probes x kernels x dtypes
    assert set(peak_table.dtype) == {"float32", "int8"} and set(peak_table.probe) == set(
        work.PROBES
    )
    assert (peak_table.gmacs > 0).all() and (peak_table.gmacs_min <= peak_table.gmacs).all()
    assert (peak_table.gmacs <= peak_table.gmacs_max).all() and (
        peak_table.rounds == QUICK_PEAKS.rounds
    ).all()
    np.testing.assert_array_equal(
        peak_table[peak_table.dtype == "float32"].vs_float32, 1.0
    )  # x / x
    conv, fc = work.PROBES["conv"], work.PROBES["fc"]
    expected = {
        "conv": conv["size"] ** 2 * conv["channels"] ** 2 * conv["kernel"] ** 2,
        "fc": fc["batch"] * fc["depth"] * fc["units"],
    }
    assert (peak_table.macs == peak_table.probe.map(expected)).all()
    best = work.best_peaks(peak_table)
    assert set(best) == {"float32", "int8"} and min(best.values()) > 0
    sentence = work.peak_verdict(cpu.with_columns(peak_table, None, None))
    assert (
        sentence.startswith("int8 peak / float32 peak = ")
        and "(conv)" in sentence
        and "(fc)" in sentence
    )
    with pytest.raises(ValueError, match="peaks are measured for kernels"):
        work.peaks(("reference",), QUICK_PEAKS)


def test_floor_table_covers_every_model(two_models, digits, peak_table):
    config = bench.BenchConfig(
        kernels=("xnnpack", "reference"),
        threads=(1,),
        batches=(1, 3),
        rounds=2,
        block_ms=0.5,
        warmup=2,
        loop=False,
    )
    frame = bench.run(two_models, digits.x_test, config, progress=False)
    floor = work.floor_table(two_models, frame, peak_table)
    assert (floor.peak_gmacs > 0).all() and (floor.floor_us > 0).all()
    assert (floor.measured_vs_floor > 0).all()
    assert (
        list(floor.peak_kind) == [work.peak_kind(m) for m in floor["mode"]] == ["float32", "int8"]
    )
    beside = work.with_floor(frame, two_models, peak_table)
    timed = beside[beside.kernels == "xnnpack"]
    # the same quantities in another order of float64 operations: a few roundings apart
    np.testing.assert_allclose(
        timed.floor_us,
        timed.batch * 356_928 / (timed.peak_gmacs * 1e3),
        rtol=tolerance.gamma(4, tolerance.U64),
    )
    assert beside[beside.kernels == "reference"].peak_gmacs.isna().all()  # no peak for plain loops


def test_bench_command_smoke_and_quiet_means_nothing_on_stderr(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"
    }  # TensorFlow's chatter on
    result = subprocess.run(
        [sys.executable, "-m", "qlab", "bench", "--quick", "-q", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("bench.csv", "peaks.csv", "sizes.csv", "work.csv", "bench.png", "sizes.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "Latency relative to float/float32" in result.stdout and "Batch 4:" in result.stdout
    assert result.stderr == ""
    peaks = pd.read_csv(tmp_path / "peaks.csv")
    for dtype in ("float32", "int8"):
        assert (peaks[(peaks.dtype == dtype) & (peaks.kernels == "xnnpack")].gmacs > 0).all(), dtype
    this = cpu.describe()
    for name in ("bench.csv", "peaks.csv", "work.csv"):  # every latency row says what measured it
        table = pd.read_csv(tmp_path / name, keep_default_na=False)
        for column in (*cpu.MACHINE_COLUMNS, "kernels", "threads"):
            assert column in table.columns, (name, column)
        assert (table.cpu == this["cpu"]).all() and (table.int8_path == this["int8_path"]).all(), (
            name
        )
    bench_table = pd.read_csv(tmp_path / "bench.csv")
    assert (bench_table[bench_table.kernels == "xnnpack"].floor_us > 0).all()
    lines = result.stdout.splitlines()
    assert lines[0] == cpu.line() and any(
        ln.startswith("int8 peak / float32 peak = ") for ln in lines
    )
    assert (
        "On this CPU, XNNPACK, 1 thread, batch 1" in result.stdout
    )  # each model's verdict, whichever it is


def test_bench_command_rejects_unknown_kernels():
    result = subprocess.run(
        [sys.executable, "-m", "qlab", "bench", "--kernels", "gpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "valid: xnnpack, builtin, reference" in result.stderr
