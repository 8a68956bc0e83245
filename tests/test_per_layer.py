"""Per-layer error: qlab's local view equals the QuantizationDebugger's; both views exist for
full-integer, 16x8 and dynamic-range models; layers kept in float; QAT against deployed."""

import numpy as np
import pandas as pd
import pytest
import tolerance
from tolerance import gamma, numpy_mean

from qlab import artifacts
from qlab.analysis import capture, per_layer, variants
from qlab.conversion import converter, to_tflite
from qlab.tflite import flatbuffer, naming
from qlab.training import fit

MODES = ("full_integer", "integer_only", "integer_only_uint8", "int16x8", "dynamic_range")


@pytest.fixture(scope="module")
def tflites():
    pairs = [("float", m) for m in ("float32", "float16", *MODES)] + [("qat", "integer_only")]
    return artifacts.convert_all(pairs, progress=False)


@pytest.fixture(scope="module")
def float_tflite(tflites):
    return tflites[("float", "float32")]


@pytest.fixture(scope="module")
def errors(tflites, float_tflite, digits):
    return {
        m: per_layer.layer_errors(tflites[("float", m)], float_tflite, digits.x_test) for m in MODES
    }


def test_local_view_agrees_with_the_quantization_debugger(float_model, calibration, digits, errors):
    tflite = to_tflite.quantize(float_model, "full_integer", calibration)
    # the debugger runs TensorFlow's interpreter with its default XNNPACK delegate: the same integer
    # kernels as ours only on XNNPACK, whatever the run's default (make test-numeric)
    ours = per_layer.layer_errors(
        tflite,
        to_tflite.quantize(float_model, "float32"),
        digits.x_test,
        kernels="xnnpack",
        views=("local",),
    )
    theirs = per_layer.debugger(float_model, calibration, digits.x_test)
    assert list(theirs["layer"]) == [
        "conv1",
        "conv2",
        "conv3",
        "flatten",
        "dense",
        "probs",
        "probs/softmax",
    ]
    tolerance.assert_debugger_agrees(ours, theirs, tflite, len(digits.x_test))


def float_bound(tflite: bytes, float_tflite: bytes, x, name: str) -> np.ndarray:
    """tolerance.op_bound for layer `name`'s op on the inputs the local view feeds its float copy:
    how far two float32 evaluations of it may differ, per output element."""
    pair = capture.pair(tflite, float_tflite)
    layer = pair.layer(name)
    inputs = per_layer.op_inputs(pair, layer, capture.run(tflite, x, "xnnpack"))
    bound = tolerance.op_bound(
        pair.reference,
        layer.reference,
        inputs,
        pair.reference.tensors[layer.reference.outputs[0]].shape,
    )
    return np.broadcast_to(
        bound, (len(x), *pair.reference.tensors[layer.reference.outputs[0]].shape[1:])
    )


def float_max_abs_error(tflite: bytes, float_tflite: bytes, x, name: str) -> float:
    """The largest max_abs_error a layer computed in float can show in the local view: the mean over
    samples of the largest per-element `float_bound`, and the float32 difference's own rounding."""
    bound = float_bound(tflite, float_tflite, x, name)
    return float(bound.reshape(len(x), -1).max(axis=1).mean()) * (1 + gamma(1))


def test_both_views_for_every_quantized_mode(errors, tflites, float_tflite, digits):
    # conv1's float copy (NumPy) against the float reference's conv1 (LiteRT) on the same float
    # image: they differ by at most d per element (tolerance.op_bound), so per sample the two views'
    # squared errors differ by mean(d (2 |e| + d)) <= 2 rms(d) rms(e) + mean(d**2) (Cauchy-Schwarz,
    # then over samples), e the accumulated view's error; each view's difference rounds once in
    # float32 (2 gamma(2) of an mse) and its float64 means add numpy_mean over the elements and the
    # samples
    d = float_bound(tflites[("float", "full_integer")], float_tflite, digits.x_test, "conv1")
    rms_d, ms_d = float(np.sqrt(np.mean(d**2))), float(np.mean(d**2))
    arithmetic = 2 * gamma(2) + 2 * (numpy_mean(d[0].size) + numpy_mean(len(d)))
    for mode, table in errors.items():
        assert list(table.columns) == list(per_layer.COLUMNS)
        assert set(table["view"]) == {"local", "accumulated"}, mode
        assert (table["num_elements"] > 0).all() and table["mean_squared_error"].notna().all()
        local = table[table.view == "local"].set_index("layer")
        accumulated = table[table.view == "accumulated"].set_index("layer")
        # a reshape adds nothing: its output is its input's integers on its input's grid, and its
        # float copy the same values dequantized alike
        assert local.loc["flatten", "mean_squared_error"] == 0
        if mode not in ("integer_only", "integer_only_uint8"):
            # with float input, conv1's float copy sees the same float image in both views
            ours, float_tflites = (
                v.loc["conv1", "mean_squared_error"] for v in (local, accumulated)
            )
            assert abs(ours - float_tflites) <= 2 * rms_d * np.sqrt(
                float_tflites
            ) + ms_d + arithmetic * max(ours, float_tflites), mode
        # error builds up: by the logits the accumulated error exceeds what the layer adds
        assert (
            accumulated.loc["probs", "mean_squared_error"]
            > local.loc["probs", "mean_squared_error"]
        )


def test_int8_convs_add_about_rounding_alone_and_int16_far_less_in_real_terms(errors):
    int8 = errors["full_integer"].query("view == 'local'").set_index("layer")
    int16 = errors["int16x8"].query("view == 'local'").set_index("layer")
    for layer in ("conv1", "conv2", "conv3"):
        assert 0.2 < int8.loc[layer, "rmse/scale"] < 0.5  # ≈ 1/√12 = 0.289 plus weight rounding
        assert int16.loc[layer, "mean_squared_error"] < int8.loc[layer, "mean_squared_error"]
        assert int16.loc[layer, "rmse/scale"] > 5  # a 16-bit level is far below the weights' error


def test_dynamic_range_layers_with_float_weights_add_no_error(
    errors, tflites, float_tflite, digits
):
    table = errors["dynamic_range"].query("view == 'local'").set_index("layer")
    assert table["scale"].isna().all()  # float outputs: no grid
    dynamic = tflites[("float", "dynamic_range")]
    # under 1024 weights: kept in float, so the local view sees two float32 evaluations of one op;
    # int8 weights: an error no float evaluation could make
    assert table.loc["conv1", "max_abs_error"] <= float_max_abs_error(
        dynamic, float_tflite, digits.x_test, "conv1"
    )
    assert table.loc["conv2", "max_abs_error"] > float_max_abs_error(
        dynamic, float_tflite, digits.x_test, "conv2"
    )


def test_float_models_and_bad_names_are_refused(tflites, float_tflite, digits):
    for mode in ("float32", "float16"):
        with pytest.raises(ValueError, match="nothing quantized"):
            per_layer.layer_errors(tflites[("float", mode)], float_tflite, digits.x_test[:5])
    with pytest.raises(ValueError, match="valid views: local, accumulated"):
        per_layer.layer_errors(
            tflites[("float", "full_integer")], float_tflite, digits.x_test[:5], views=("global",)
        )
    with pytest.raises(ValueError, match="must be a float32 .tflite"):
        capture.pair(tflites[("float", "full_integer")], tflites[("float", "full_integer")])
    pair = capture.pair(tflites[("float", "full_integer")], float_tflite)
    with pytest.raises(
        KeyError, match="its layers are: conv1, conv2, conv3, flatten, dense, probs, probs/softmax"
    ):
        pair.layer("conv4")
    with pytest.raises(ValueError, match="empty"):
        per_layer.metrics(np.zeros((3, 0)))


def test_keep_float_leaves_the_named_layers_in_float(
    float_model, calibration, digits, float_tflite
):
    tflite = to_tflite.quantize(
        float_model, "full_integer", calibration, keep_float=("conv2", "dense")
    )
    file = flatbuffer.read(tflite)
    kinds = {
        naming.layer_name(file, op): file.tensors[op.outputs[0]].type
        for op in naming.compute_ops(file)
    }
    assert kinds["conv2"] == kinds["dense"] == "FLOAT32" and kinds["conv3"] == "INT8"
    table = per_layer.layer_errors(tflite, float_tflite, digits.x_test, views=("local",)).set_index(
        "layer"
    )
    # conv2 in float: within two float32 evaluations of it; conv3 on int8: beyond any
    assert table.loc["conv2", "max_abs_error"] <= float_max_abs_error(
        tflite, float_tflite, digits.x_test, "conv2"
    )
    assert table.loc["conv3", "max_abs_error"] > float_max_abs_error(
        tflite, float_tflite, digits.x_test, "conv3"
    )
    with pytest.raises(ValueError, match="the model's layers are: conv1, conv2"):
        to_tflite.quantize(float_model, "full_integer", calibration, keep_float=("conv9",))
    with pytest.raises(ValueError, match="'full_integer' only"):
        to_tflite.quantize(float_model, "integer_only", calibration, keep_float=("conv1",))


def test_keep_float_sweep_pays_size_for_each_float_layer(float_model, calibration, digits):
    sweep = variants.keep_float_sweep(
        float_model, calibration, digits.x_test, digits.y_test, choices=[(), ("conv2",)]
    )
    assert list(sweep["keep_float"]) == ["(none)", "conv2"]
    assert (
        sweep.loc[1, "size_bytes"] > sweep.loc[0, "size_bytes"] + 3 * 18432 * 0.9
    )  # 4 bytes, not 1
    assert (sweep["accuracy"] > 0.95).all() and (sweep["agreement"] > 0.98).all()


def test_per_tensor_conversion_and_channel_ranges(float_model, calibration, digits, float_tflite):
    summary, local = variants.per_channel_vs_per_tensor(
        float_model, calibration, digits.x_test, digits.y_test
    )
    assert list(summary["weights"]) == ["per-channel", "per-tensor"]
    assert summary.loc[1, "size_bytes"] < summary.loc[0, "size_bytes"]  # one scale per tensor
    assert (summary["accuracy"] > 0.95).all()
    # a conv shares one scale among channels of different reach: its rounding error grows
    assert local.loc["conv1", "per-tensor"] > local.loc["conv1", "per-channel"]
    ranges = variants.channel_ranges(float_tflite)
    assert set(ranges["layer"]) == {"conv1", "conv2", "conv3", "dense", "probs"}
    widest = ranges.loc[ranges.groupby("layer")["max_abs"].idxmax()]
    assert (widest["levels_per_tensor"] == 255).all() and ranges["levels_per_tensor"].min() < 200


def test_qat_keras_and_deployed_mostly_land_on_the_same_levels(qat_model, tflites, digits):
    table = per_layer.qat_vs_deployed(qat_model, tflites[("qat", "integer_only")], digits.x_test)
    assert list(table["layer"]) == ["conv1", "conv2", "conv3", "flatten", "dense", "probs"]
    assert (table["lsb_off"] < 0.1).all()
    convs = table.set_index("layer").loc[["conv1", "conv2", "conv3"]]
    assert (convs["max_lsb"] < 1.5).all()  # at most one level apart where the two differ


def test_float_copy_of_a_qat_model_holds_its_float_weights(qat_model, digits):
    plain = fit.float_copy(qat_model, "digits_cnn")
    assert not converter.is_qat(plain)
    accuracy = fit.keras_accuracy(plain, digits)
    assert accuracy > 0.95 and isinstance(pd.DataFrame([accuracy]), pd.DataFrame)
