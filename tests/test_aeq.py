"""ai-edge-quantizer through qlab: the aeq, sensitivity and mixed-precision studies with one seed on
digits_cnn, the grid checked by the sweep engine and its cells measured in this process (the engine
itself is tests/test_sweep.py's; here the cells share their model with notebook 13, which runs on
this worker after them); every AEQ file runs on LiteRT and goes through qlab's
per-layer views, and AEQ's validate() equals qlab's accumulated view tensor by tensor; a per-op
recipe really changes the op in the file; sensitivity ranks and the search's path hold together and
rebuild from scratch; pareto() and cheapest() on hand-made points; and the clear errors (an unknown
recipe, also on the command line; a float16 file; a quantized file; an unknown layer or
precision)."""

import json
import os
import subprocess
import sys
import warnings

import matplotlib
import numeric_paths
import numpy as np
import pandas as pd
import pytest
import tolerance

from qlab import artifacts
from qlab.analysis import calibration as calib
from qlab.analysis import precision
from qlab.conversion import aeq
from qlab.plots import precision as plots
from qlab.studies import aeq_recipes, mixed_precision, sensitivity, sweep
from qlab.tflite import flatbuffer, measure, naming
from qlab.tflite.runtime import Runtime
from qlab.training import data
from qlab.training.fit import TrainConfig

matplotlib.use("Agg")
CONFIG = TrainConfig(model="digits_cnn", seed=0)
SETTINGS = ["full_integer", "static_wi8_ai8", "weight_only_wi4_afp32", "dynamic_wi8_afp32"]


MODULES = {"aeq": aeq_recipes, "sensitivity": sensitivity, "mixed-precision": mixed_precision}


def study(name: str, settings=None) -> pd.DataFrame:
    """The study's grid (checked by the sweep engine), each cell measured here, in grid order."""
    grid = sweep.grid(name, ["digits_cnn"], [0], settings)
    return pd.DataFrame([row for cell in grid.cells for row in MODULES[name].measure(dict(cell))])


def as_aeq_runs():
    """LiteRT's defaults set to how AEQ's validate() runs the files (XNNPACK, one thread, as
    qlab.conversion.aeq.validate asks), so that qlab's accumulated view sees the same float32 values
    as validate() whatever numeric path the suite runs on: with QLAB_TEST_THREADS=2 XNNPACK's float
    kernels sum in another order, and an output mse moves by up to 3e-6 of itself."""
    return numeric_paths.litert_defaults("xnnpack", 1)


@pytest.fixture(scope="module")
def tables():
    """The three studies' tables, one seed; the aeq study's accumulated view run as AEQ runs."""
    with as_aeq_runs():
        aeq_table = study("aeq", SETTINGS)
    return {
        "aeq": aeq_table,
        "sensitivity": study("sensitivity"),
        "mixed-precision": study("mixed-precision"),
    }


@pytest.fixture(scope="module")
def digits():
    return data.load()


@pytest.fixture(scope="module")
def model(tables, digits):
    """The float model, its float32 file and the calibration images the studies used (seed 0)."""
    return (
        artifacts.trained(CONFIG, digits, progress=False),
        artifacts.quantized(CONFIG, "float32", progress=False),
        data.calibration(digits.x_train, seed=0),
    )


@pytest.fixture(scope="module")
def layers(model):
    return list(aeq.op_scopes(model[1], model[0]))


def elements(float32: bytes, tensors) -> np.ndarray:
    """Values per sample of each tensor (by name, as AEQ keeps the float file's names)."""
    by_name = {t.name: t for t in flatbuffer.read(float32).tensors}
    return np.array([int(np.prod(by_name[name].shape[1:])) for name in tensors])


def mse_rtol(float32: bytes, tensors, samples: int) -> np.ndarray:
    """AEQ's validate() against qlab's accumulated view, per tensor: both run the two files on
    LiteRT with XNNPACK, one thread (`as_aeq_runs`), one sample at a time, so the same float32
    differences; AEQ then squares and averages them in float32, qlab in float64
    (tolerance.float32_mse_rtol)."""
    return np.array([tolerance.float32_mse_rtol(n, samples) for n in elements(float32, tensors)])


def test_every_aeq_file_runs_and_goes_through_the_views(tables, model, layers):
    table = tables["aeq"]
    assert (
        list(table.columns) == list(aeq_recipes.COLUMNS)
        and list(dict.fromkeys(table.setting)) == SETTINGS
    )
    for setting, rows in table.groupby("setting", sort=False):
        assert rows.accuracy.nunique() == 1 and rows.accuracy.iloc[0] > 0.9, (
            setting
        )  # chance is 0.1
        assert rows.route.iloc[0] == ("aeq" if setting in aeq.RECIPES else "converter")
        assert list(rows.layer) == layers and (rows.note == "").all(), (
            setting
        )  # a row per compute op
        assert rows[["local_mse", "accumulated_mse"]].notna().all().all(), setting
        assert (rows.size_bytes < 0.35 * len(model[1])).all() and np.isfinite(rows.latency_x).all()
    static = table[table.setting.isin(["full_integer", "static_wi8_ai8"])]
    assert (
        static.accumulated_rmse_steps.notna().all()
    )  # outputs on an integer grid: errors in its steps
    floats = table[table.setting.isin(["weight_only_wi4_afp32", "dynamic_wi8_afp32"])]
    assert floats.accumulated_rmse_steps.isna().all()  # float outputs: no steps to count in
    assert table[table.route == "converter"].aeq_mse.isna().all()


def test_validate_equals_the_accumulated_view(tables, model):
    rows = tables["aeq"][tables["aeq"].route == "aeq"]
    assert rows.aeq_mse.notna().all() and (rows.accumulated_mse > 0).all()
    rtol = mse_rtol(model[1], rows.tensor, aeq_recipes.ERROR_SAMPLES)
    gap = np.abs(rows.aeq_mse - rows.accumulated_mse).to_numpy()
    assert np.all(gap <= rtol * rows.accumulated_mse.to_numpy()), (
        rows.tensor,
        gap / rows.accumulated_mse,
        rtol,
    )
    # a cosine over n float32 values can pass 1 by its roundings: tolerance.float32_cosine_slack
    slack = np.array([tolerance.float32_cosine_slack(n) for n in elements(model[1], rows.tensor)])
    assert ((rows.aeq_cosine > 0.95) & (rows.aeq_cosine <= 1 + slack)).all()
    summary = aeq_recipes.summary(
        tables["aeq"]
    )  # the largest relative gap over every tensor of the AEQ files
    assert (
        summary.aeq_vs_qlab.max() <= rtol.max()
        and "validate() mse matches" in aeq_recipes.headline(tables["aeq"])
    )


def test_a_per_op_recipe_changes_the_op_in_the_file(model, layers, digits):
    keras_model, float32, images = model
    ops = {
        naming.labels(flatbuffer.read(float32), keras_model)[op.index]: op.name
        for op in naming.compute_ops(flatbuffer.read(float32))
    }
    wide = next(label for label, name in ops.items() if name == "FULLY_CONNECTED")
    kept = [label for label, name in ops.items() if name == "CONV_2D"][
        1
    ]  # a conv between two int8 ones
    mixed = aeq.quantize(
        float32,
        "static_wi8_ai8",
        calibration=images,
        precisions={wide: "int16", kept: "float"},
        keras_model=keras_model,
    )
    file = flatbuffer.read(mixed)
    by_label = {label: file.ops[i] for i, label in naming.labels(file, keras_model).items()}
    producer = {out: op for op in file.ops for out in op.outputs}
    types = lambda indices: {file.tensors[i].type for i in indices if i >= 0}  # noqa: E731
    assert types(by_label[wide].outputs) == {"INT16"} and types(by_label[wide].inputs[:1]) == {
        "INT16"
    }
    assert types(by_label[kept].outputs) == {"FLOAT32"} and types(by_label[kept].inputs) == {
        "FLOAT32"
    }
    assert producer[by_label[kept].inputs[0]].name == "DEQUANTIZE"
    consumers = [op.name for op in file.ops if by_label[kept].outputs[0] in op.inputs]
    assert consumers == ["QUANTIZE"]
    for label in set(layers) - {wide, kept}:
        assert types(by_label[label].outputs) == {"INT8"}, label
    # validate() on the mixed file: its output mse is what NumPy computes from the two files'
    # outputs, run as AEQ runs them (XNNPACK, one thread, every tensor kept, one sample at a time),
    # so the same float32 differences, squared and averaged here in float64
    x = digits.x_test[:60]
    checked = aeq.validate(float32, mixed, x)
    assert {"input", "output", "constant", "intermediate"} <= {r["kind"] for r in checked}
    output = next(r for r in checked if r["kind"] == "output")
    with warnings.catch_warnings():  # keeping every tensor is the point here, as it is AEQ's
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        runtimes = [Runtime(f, "xnnpack", 1, keep_intermediates=True) for f in (mixed, float32)]
    outputs = [np.concatenate([rt.predict(s[None]) for s in x]) for rt in runtimes]
    expected = np.mean(((outputs[0] - outputs[1]).astype(np.float64)) ** 2)
    assert output["mse"] == pytest.approx(
        expected, rel=tolerance.float32_mse_rtol(outputs[0][0].size, len(x))
    )
    with as_aeq_runs():
        rows = aeq_recipes.layer_rows(mixed, float32, x, keras_model)
    assert [r["layer"] for r in rows] == layers
    aeq_mse, accumulated = (np.array([r[k] for r in rows]) for k in ("aeq_mse", "accumulated_mse"))
    assert np.all(
        np.abs(aeq_mse - accumulated)
        <= mse_rtol(float32, [r["tensor"] for r in rows], len(x)) * accumulated
    )


def test_sensitivity_ranks_are_a_permutation_and_effects_add_up(tables, layers):
    table = tables["sensitivity"]
    uniform = (
        tables["mixed-precision"]
        .query("kind == 'uniform' and setting == 'minmax'")
        .set_index("config")
    )
    assert set(table.columns) == set(sensitivity.COLUMNS)
    for way, rows in table.groupby("setting"):
        assert list(rows.layer) == layers and sorted(rows["rank"]) == list(
            range(1, len(layers) + 1)
        ), way
        ranked = rows.sort_values("rank")
        assert (np.diff(ranked.effect_mse) <= 0).all(), way  # rank 1 has the largest effect
    one = table[table.setting == "quantize_one"]
    assert (one.effect_mse == one.output_mse).all() and (one.output_mse > 0).all()
    kept = table[table.setting == "float_one"]  # the error removed: all-int8's minus this file's
    # the all-int8 file is built from the same ranges and run the same way by both studies: the same
    # output_mse, and the same float64 subtraction
    np.testing.assert_array_equal(
        kept.effect_mse, uniform.loc["all_int8", "output_mse"] - kept.output_mse
    )
    assert (table.int8_accuracy == uniform.loc["all_int8", "accuracy"]).all()
    assert (table.float_accuracy == uniform.loc["float32", "accuracy"]).all()
    summary = sensitivity.summary(table)
    assert set(summary.setting) == {"quantize_one", "float_one"} and (summary.seeds == 1).all()
    assert set(plots.sensitivity_figures(table)) == {"sensitivity"}


def test_the_search_ends_all_float_and_its_points_are_real(tables, model, layers, digits):
    keras_model, float32, images = model
    table = tables["mixed-precision"]
    assert list(table.columns) == list(mixed_precision.COLUMNS)
    assert set(table.setting) == set(mixed_precision.SETTINGS)
    # AEQ's moving-average ranges clip: all-int8 moves further from float32 than with min-max ranges
    int8 = table[table.config == "all_int8"].set_index("setting").output_mse
    assert int8["aeq_calibrate"] > int8["minmax"]
    table = table[table.setting == "minmax"]
    path = table[table.chosen].sort_values("step")
    assert list(path.step) == list(range(2 * len(layers) + 1))  # each op int8 -> int16 -> float
    assert json.loads(path.config.iloc[0]) == {} and json.loads(
        path.config.iloc[-1]
    ) == dict.fromkeys(layers, "float")
    assert path.output_mse.iloc[-1] < path.output_mse.iloc[0] / 10
    # a configuration of the path, rebuilt from scratch: the same size and accuracy
    ranges = calib.qsvs(calib.method_ranges(float32, images, "minmax"))
    config = json.loads(path.config.iloc[2])
    rebuilt = aeq.quantize(
        float32, "static_wi8_ai8", qsvs=ranges, precisions=config, keras_model=keras_model
    )
    assert len(rebuilt) == path.size_bytes.iloc[2]
    assert measure.accuracy(rebuilt, digits.x_test, digits.y_test) == path.accuracy.iloc[2]
    by = table[table.kind != "search"].set_index("config")
    assert by.loc["float32", "size_bytes"] == len(float32)
    assert by.loc["float32", "accuracy"] == measure.accuracy(float32, digits.x_test, digits.y_test)
    full = artifacts.quantized(CONFIG, "full_integer", images, digits, progress=False)
    assert by.loc["full_integer", "size_bytes"] == len(full)
    # the front and the cheapest point, as the columns say
    points = table.to_dict("records")
    assert table.pareto.tolist() == precision.pareto(points)
    best = table[table.cheapest]
    assert len(best) == 1 and best.kind.iloc[0] != "converter"
    # precision.cheapest's own rule, its 1e-9 pp slack included (it absorbs the float64 rounding of
    # 100·(a − b), ~1e-14, far below the 100/360 pp between two accuracies of the test split)
    ok = table[
        (table.kind != "converter") & (100 * (table.accuracy - table.float_accuracy) >= -0.1 - 1e-9)
    ]
    assert best.size_bytes.iloc[0] == ok.size_bytes.min()
    figure = plots.mixed_precision_figures(table)["mixed_precision"]
    assert len(figure.axes) == 1


def test_pareto_and_cheapest_on_hand_made_points():
    points = [
        {"size_bytes": 10, "accuracy": 0.90},
        {"size_bytes": 20, "accuracy": 0.95},
        {"size_bytes": 20, "accuracy": 0.93},
        {"size_bytes": 30, "accuracy": 0.95},
        {"size_bytes": 5, "accuracy": 0.50},
        {"size_bytes": 10, "accuracy": 0.90},
    ]
    assert precision.pareto(points) == [
        True,
        True,
        False,
        False,
        True,
        True,
    ]  # equal points do not beat each other
    assert precision.cheapest(points, 0.951) is points[1]  # 0.95 is 0.1 pp under 0.951: within
    assert precision.cheapest(points, 0.952) is None
    assert (
        precision.cheapest(points, 0.95, tolerance_pp=5) is points[0]
    )  # the first of two equal points
    tie = [{"size_bytes": 20, "accuracy": 0.95}, {"size_bytes": 20, "accuracy": 0.96}]
    assert precision.cheapest(tie, 0.9) is tie[1]


def test_the_figures(tables):
    figures = plots.aeq_figures(tables["aeq"])
    assert set(figures) == {"aeq_files", "aeq_layers"}
    assert len(figures["aeq_files"].axes) == 3 and len(figures["aeq_layers"].axes) == 2
    aeq_rows = tables["aeq"][tables["aeq"].route == "aeq"]
    scatter = figures["aeq_layers"].axes[0].collections
    assert sum(len(c.get_offsets()) for c in scatter) == len(
        aeq_rows
    )  # one point per tensor of an AEQ file


VALID = ", ".join(aeq.RECIPES)


def test_an_unknown_recipe_is_refused_with_the_valid_ones(model):
    with pytest.raises(
        ValueError, match=f"unknown ai-edge-quantizer recipe 'static_wi8_ai9'; valid: {VALID}$"
    ):
        aeq.check_recipe("static_wi8_ai9")
    with pytest.raises(ValueError, match="recipe 'static_wi8_ai9'; valid: dynamic_wi8_afp32"):
        aeq.quantize(model[1], "static_wi8_ai9")
    with pytest.raises(
        ValueError, match=f"unknown setting 'static_wi8_ai9' for the aeq study.*recipes {VALID}"
    ):
        sweep.grid("aeq", ["digits_cnn"], [0], ["static_wi8_ai9"])


def test_an_unknown_recipe_on_the_command_line_is_one_error_line(tmp_path):
    out = tmp_path / "x"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qlab",
            "study",
            "aeq",
            "--settings",
            '["static_wi8_ai9"]',
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and "static_wi8_ai9" in errors[0] and "static_wi8_ai8" in errors[0], (
        result.stderr
    )
    assert result.stdout == "" and not (out.exists() and any(out.iterdir()))  # nothing written


def test_a_float16_file_is_refused_with_aeqs_reason(model, digits):
    float16 = artifacts.quantized(CONFIG, "float16", progress=False)
    with pytest.raises(
        aeq.AEQError,
        match=r"could not quantize this model with static_wi8_ai8: \w+Error: .*"
        r"stores float16 weights.*mode 'float32'",
    ):
        aeq.quantize(float16, "static_wi8_ai8", calibration=model[2])


def test_a_quantized_file_is_refused(model, digits):
    full = artifacts.quantized(CONFIG, "full_integer", model[2], digits, progress=False)
    with pytest.raises(aeq.AEQError, match="quantizes float models: give the float32 .tflite"):
        aeq.quantize(full, "dynamic_wi8_afp32")


def test_an_unknown_layer_or_precision_is_refused(model, layers):
    keras_model, float32, _ = model
    with pytest.raises(
        ValueError, match=f"no layer 'conv9' in this model; its layers are: {', '.join(layers)}$"
    ):
        aeq.recipe("static_wi8_ai8", {"conv9": "int8"}, float32, keras_model)
    with pytest.raises(
        ValueError,
        match=f"unknown precision 'int4' for layer '{layers[0]}'; valid: int8, int16, float",
    ):
        aeq.recipe("static_wi8_ai8", {layers[0]: "int4"}, float32, keras_model)


def test_a_static_file_says_what_aeq_left_in_float(tables, model):
    keras_model, float32, images = model
    static = tables["aeq"][tables["aeq"].setting == "static_wi8_ai8"]
    assert (static.note == "").all()  # every op of the digits CNN is quantized
    kept = aeq.quantize(
        float32,
        "static_wi8_ai8",
        calibration=images,
        precisions={"dense": "float"},
        keras_model=keras_model,
    )
    assert (
        aeq_recipes.left_in_float(kept, keras_model)
        == "ai-edge-quantizer left in float: dense (FULLY_CONNECTED)"
    )
