"""The matrix: every public analysis on every zoo model (seed 0, kept small). Each cell is checked
against an oracle (LiteRT, the QuantizationDebugger, the file's own grids, the Keras model) or is a
clear error that names what is unsupported."""

import numpy as np
import pandas as pd
import pytest
import tolerance

from qlab import artifacts
from qlab.analysis import buckets, capture, converter_grids, per_layer, variants
from qlab.conversion import debugger, to_tflite
from qlab.infra import quiet
from qlab.intmath import float_ops
from qlab.perf import sizes, work
from qlab.tflite import flatbuffer, naming
from qlab.tflite.runtime import Runtime
from qlab.training import data, models
from qlab.training.fit import TrainConfig, keras_accuracy

ZOO = tuple(models.ZOO)
QUANTIZED = ("full_integer", "integer_only", "int16x8", "dynamic_range")
N = 100  # test images per analysis: enough for every op, quick


class Zoo:
    """One zoo model's trained Keras model, data, calibration and files (float32 reference and
    modes)."""

    def __init__(self, name: str):
        self.name, self.config = name, TrainConfig(model=name)
        self.data = data.load(self.config.dataset)
        self.calibration = data.calibration(self.data.x_train)
        self.model = artifacts.convertible(artifacts.trained(self.config, progress=False))
        self.reference = artifacts.float_tflite(self.config)
        self.files, self.refused = {}, {}
        for mode in QUANTIZED:
            try:
                self.files[mode] = artifacts.quantized(
                    self.config, mode, self.calibration, progress=False
                )
            except Exception as exc:  # noqa: BLE001  (kept, and checked to be a clear refusal below)
                self.refused[mode] = exc
        self.x = self.data.x_test[:N]

    def pair(self, mode: str) -> capture.Pair:
        return capture.pair(self.files[mode], self.reference, self.model)


@pytest.fixture(scope="module", params=ZOO)
def zoo(request):
    return Zoo(request.param)


def test_refusals_name_what_is_unsupported(zoo):
    for mode, exc in zoo.refused.items():
        assert zoo.name == "lstm_rows" and mode == "int16x8", (zoo.name, mode, exc)
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in str(exc) and "'lstm'" in str(exc)


def test_a_second_conversion_gives_the_same_bytes(zoo):
    """Even the LSTM's int8 file, where the converter leaves a buffer of stray memory (zeroed by
    qlab)."""
    for mode in ("full_integer", "integer_only"):
        assert to_tflite.quantize(zoo.model, mode, zoo.calibration) == zoo.files[mode], mode


def test_float_file_on_litert_agrees_with_keras(zoo):
    keras_acc = keras_accuracy(zoo.model, zoo.data)
    assert abs(measure_accuracy(zoo.reference, zoo.data) - keras_acc) <= 1 / len(zoo.data.x_test)
    assert keras_acc >= 0.95  # every zoo model passes 95 % (seed 0; the zoo command gives medians)
    rt = Runtime(zoo.reference)
    once, twice = rt.predict(zoo.x[:1]), rt.predict(zoo.x[:1])
    np.testing.assert_array_equal(once, twice)  # stateful models are reset: same input, same output


def measure_accuracy(tflite, dataset) -> float:
    return float(np.mean(Runtime(tflite).predict(dataset.x_test).argmax(1) == dataset.y_test))


def test_float_ops_equal_litert_float_kernels(zoo):
    """The oracle of the local view's float copies: each op of the float32 file, computed by qlab
    from the file's own inputs, equals what LiteRT computed."""
    file = flatbuffer.read(zoo.reference)
    captured = capture.run(zoo.reference, zoo.x)
    for op in naming.compute_ops(file):
        inputs = [
            captured[i] if i in captured else (file.tensors[i].data if i >= 0 else None)
            for i in op.inputs
        ]
        expected = captured[op.outputs[0]]
        shape = file.tensors[op.outputs[0]].shape
        got = float_ops.compute(op, inputs, shape).reshape(expected.shape)
        bound = tolerance.op_bound(file, op, inputs, shape)
        bound = np.reshape(bound, got.shape) if np.ndim(bound) else bound
        assert np.all(np.abs(got - expected) <= bound), (op.name, np.abs(got - expected).max())


@pytest.mark.parametrize("mode", ("full_integer", "integer_only", "int16x8"))
def test_every_predicted_grid_equals_the_file(zoo, mode):
    if mode not in zoo.files:
        pytest.skip(f"{zoo.name} does not convert to {mode} (checked in test_refusals)")
    pair = zoo.pair(mode)
    tolerance.assert_grids_equal(
        converter_grids.converter_grids(pair, zoo.calibration), zoo.files[mode]
    )


def test_both_views_give_a_row_for_every_op(zoo):
    for mode in ("full_integer", "int16x8", "dynamic_range"):
        if mode not in zoo.files:
            continue
        if not any(t.quantized for t in flatbuffer.read(zoo.files[mode]).tensors):
            with pytest.raises(ValueError, match="nothing quantized"):
                per_layer.layer_errors(zoo.files[mode], zoo.reference, zoo.x, keras_model=zoo.model)
            continue
        table = per_layer.layer_errors(zoo.files[mode], zoo.reference, zoo.x, keras_model=zoo.model)
        labels = capture.pair(zoo.files[mode], zoo.reference, zoo.model).names
        for view in per_layer.VIEWS:
            rows = table[table.view == view]
            assert list(rows.layer) == labels, (mode, view)
            computed = rows[rows.note == ""]
            assert computed.mean_squared_error.notna().all()
            assert (rows[rows.note != ""].note.str.startswith("not computed, because")).all()
        assert len(table[table.view == "local"].query("note == ''")) == len(labels), (
            mode,
            "every op computed",
        )


def test_local_view_agrees_with_the_debugger(zoo):
    if zoo.name == "lstm_rows":
        pytest.skip(
            "the QuantizationDebugger's float copy of a stateful LSTM op is not comparable "
            "(design notes)"
        )
    # the debugger's interpreter runs XNNPACK: the same integer kernels as ours only there
    ours = per_layer.layer_errors(
        zoo.files["full_integer"],
        zoo.reference,
        zoo.x,
        "xnnpack",
        views="local",
        keras_model=zoo.model,
    )
    with quiet.stderr():
        theirs = per_layer.debugger(zoo.model, zoo.calibration, zoo.x)
    tolerance.assert_debugger_agrees(ours, theirs, zoo.files["full_integer"], len(zoo.x))


def test_weights_and_activations_on_their_grids(zoo):
    pair = zoo.pair("full_integer")
    table = buckets.weight_table(pair)
    stored = [
        t for t in pair.deployed.tensors if t.data is not None and t.quantized and t.type == "INT8"
    ]
    assert len(table) == len(stored)  # every int8 weight tensor of the file has a row
    assert (table.clipped_fraction == 0).all()  # a symmetric grid fitted to max |w| clips nothing
    activations = buckets.activation_table(pair, zoo.x)
    assert len(activations) and (activations["rmse/scale"] > 0).all()
    for name in activations.layer[:3]:
        _, deployed, g = buckets.layer_activations(pair, name, zoo.x)
        # on the levels: LiteRT dequantized them in float32, one rounding of (q - zp) x scale
        np.testing.assert_allclose(
            g.round_trip(deployed),
            deployed,
            rtol=0,
            atol=2 * tolerance.U32 * float(np.abs(deployed).max()),
        )


def test_before_after_for_relu_layers_or_a_clear_refusal(zoo):
    relus = buckets.relu_layers(zoo.model)
    if not relus:
        with pytest.raises(ValueError, match="no layer ending in a ReLU"):
            buckets.before_after(zoo.model, zoo.calibration[:20])
        return
    table = buckets.before_after(zoo.model, zoo.calibration[:20])
    assert list(table.layer) == relus and (table.usable_after >= table.usable_before).all()


def test_variants_and_channel_ranges(zoo):
    calibration = zoo.calibration[
        :25
    ]  # five conversions; what is checked here is names and structure, not numbers
    ranges = variants.channel_ranges(zoo.reference, zoo.model)
    weights = buckets.weight_table(zoo.pair("full_integer"))
    assert set(zip(ranges.layer, ranges.tensor)) == set(zip(weights.layer, weights.tensor))
    last = capture.pair(zoo.files["full_integer"], zoo.reference, zoo.model).layers[-1].keras
    sweep = variants.keep_float_sweep(
        zoo.model, calibration, zoo.x, zoo.data.y_test[:N], choices=[(), last]
    )
    assert list(sweep.keep_float) == ["(none)", last] and sweep.accuracy.between(0, 1).all()
    kept = flatbuffer.read(debugger.quantize_keeping_float(zoo.model, calibration, last))
    owners = naming.layer_names(kept, zoo.model)
    for index, name in owners.items():  # the file computes that layer in float, and only that layer
        assert kept.tensors[kept.ops[index].outputs[0]].type.startswith("FLOAT") == (
            name == last
        ), name
    schemes, per_layer = variants.per_channel_vs_per_tensor(
        zoo.model, calibration, zoo.x, zoo.data.y_test[:N]
    )
    assert list(schemes.weights) == ["per-channel", "per-tensor"]
    assert list(per_layer.index) == zoo.pair("full_integer").names


def test_sizes_and_work_count_every_weight(zoo):
    tflite = zoo.files["full_integer"]
    parts = sizes.breakdown(tflite)
    assert sum(parts.values()) == len(tflite)
    file = flatbuffer.read(tflite)
    int8_weights = sum(t.data.size for t in file.tensors if t.data is not None and t.type == "INT8")
    assert (
        parts.get("weights_int8", 0) >= int8_weights
    )  # every int8 weight byte (plus 4-byte length prefixes)
    assert parts.get("other_constants", 0) < 200  # nothing of weight left uncounted
    macs = work.macs(tflite)
    weighted = [
        op
        for op in file.ops
        if op.name
        in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM")
    ]
    assert len(macs) == len(weighted) and (macs.macs > 0).all()


def test_qat_or_a_clear_refusal(zoo):
    config = TrainConfig(training="qat", model=zoo.name)
    if zoo.name == "lstm_rows":
        with pytest.raises(ValueError, match=r"cannot wrap 'lstm' \(LSTM\)"):
            artifacts.trained(config, progress=False)
        return
    qat_model = artifacts.trained(config, progress=False)
    tflite = artifacts.quantized(config, "integer_only", progress=False)
    gap = per_layer.qat_vs_deployed(qat_model, tflite, zoo.x)
    # a behavioural bound, not a rounding one: the QAT model and its file share every grid, but
    # their differences compound through the layers (and a 3-class softmax on builtin kernels moves
    # a quarter of its values), so the test asks that most values of every layer land on the same
    # level
    assert len(gap) and (gap.lsb_off < 0.5).all(), gap
    assert isinstance(pd.DataFrame(gap), pd.DataFrame)
