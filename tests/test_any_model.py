"""Bring your own model: the smallest inputs that used to fail, mislabel or mislead, each now
handled (checked against an oracle) or refused with a message that names the layer and the fix."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
import tolerance

from qlab import artifacts, plots
from qlab.analysis import buckets, capture, converter_grids, per_layer, variants
from qlab.conversion import converter, to_tflite
from qlab.perf import sizes, work
from qlab.tflite import flatbuffer, naming
from qlab.tflite.runtime import Runtime
from qlab.training import data, fit, models

L = keras.layers


def build(*layers, shape=(8, 8, 1), batch_size=None, name="mine"):
    with models.fresh_names():
        inputs = keras.Input(shape, batch_size=batch_size)
        x = inputs
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x, name=name)


def trained(model, digits, epochs=2):
    return artifacts.trained_model(model, digits, epochs=epochs, use_cache=False, progress=False)


def local_rows(model, digits, calibration, mode="full_integer"):
    float_tflite = to_tflite.quantize(model, "float32")
    table = per_layer.layer_errors(
        to_tflite.quantize(model, mode, calibration),
        float_tflite,
        digits.x_test[:50],
        keras_model=model,
    )
    return table[table.view == "local"]


def test_max_pooling_and_friends_get_a_row_each(digits, calibration):
    model = trained(
        build(L.Conv2D(4, 3), L.MaxPooling2D(), L.Flatten(), L.Dense(10, activation="softmax")),
        digits,
    )
    rows = local_rows(model, digits, calibration)
    assert list(rows.op) == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert (rows.note == "").all() and rows.mean_squared_error.notna().all()


def test_a_separate_relu_does_not_take_the_convs_name(digits, calibration):
    model = trained(
        build(
            L.Conv2D(4, 3, name="conv2d"),
            L.ReLU(name="re_lu"),
            L.Flatten(),
            L.Dense(10, activation="softmax"),
        ),
        digits,
    )
    assert local_rows(model, digits, calibration).layer.iloc[0] == "conv2d"
    kept = flatbuffer.read(
        to_tflite.quantize(model, "full_integer", calibration, keep_float=("conv2d",))
    )
    assert kept.tensors[naming.compute_ops(kept)[0].outputs[0]].type == "FLOAT32"
    pair = capture.pair(
        to_tflite.quantize(model, "full_integer", calibration),
        to_tflite.quantize(model, "float32"),
        model,
    )
    assert list(buckets.weight_table(pair).layer) == ["conv2d", model.layers[-1].name]


def test_a_logits_output_keeps_its_name_and_its_loss(digits, calibration):
    model = build(L.Conv2D(8, 3, activation="relu"), L.Flatten(), L.Dense(10, name="logits"))
    assert fit.loss_for(model).get_config()["from_logits"] is True
    model = trained(model, digits, epochs=3)
    assert local_rows(model, digits, calibration).layer.iloc[-1] == "logits"
    qat_model = fit.quantize_aware(model)
    fit.compile_model(qat_model, 3e-4, fit.loss_for(model))
    assert qat_model.loss.get_config()["from_logits"] is True
    fit.fit(qat_model, digits, 1, 32, "qat", show=False)
    assert fit.keras_accuracy(qat_model, digits) > 0.9


def test_concatenation_shares_one_scale_and_depthwise_weights_are_per_channel_on_axis_3(
    digits, calibration
):
    inputs = keras.Input((8, 8, 1))
    a, b = (
        L.Conv2D(4, 3, padding="same")(inputs),
        L.Conv2D(4, 3, padding="same", activation="relu")(inputs),
    )
    x = L.DepthwiseConv2D(3)(L.Concatenate()([a, b]))
    model = trained(keras.Model(inputs, L.Dense(10)(L.Flatten()(x))), digits)
    tflite, float_tflite = (
        to_tflite.quantize(model, "full_integer", calibration),
        to_tflite.quantize(model, "float32"),
    )
    pair = capture.pair(tflite, float_tflite, model)
    tolerance.assert_grids_equal(converter_grids.converter_grids(pair, calibration), tflite)
    depthwise = [each for each in pair.layers if each.op == "DEPTHWISE_CONV_2D"][0]
    w = pair.deployed.tensors[depthwise.deployed.inputs[1]]
    assert w.per_axis and w.quantized_dimension == 3
    assert depthwise.name in set(buckets.weight_table(pair).layer)
    assert depthwise.name in set(variants.channel_ranges(float_tflite, model).layer)


def test_a_fixed_batch_lstm_runs_sample_by_sample_from_its_initial_state(digits):
    rows = data.load("digits_rows")
    model = build(L.LSTM(8), L.Dense(10), shape=(8, 8), batch_size=1)
    tflite = to_tflite.quantize(model, "float32")
    rt = Runtime(tflite)
    two = rt.predict(rows.x_test[:2])
    np.testing.assert_array_equal(two[:1], rt.predict(rows.x_test[:1]))
    np.testing.assert_array_equal(rt.predict(rows.x_test[:1]), rt.predict(rows.x_test[:1]))
    # the Keras model agrees: another float32 evaluation of the same LSTM and dense layer, within
    # the LSTM's op bound carried through the dense layer's |weights| plus the dense layer's own
    bound = tolerance.network_bounds(tflite, capture.run(tflite, rows.x_test[:2]))[
        flatbuffer.read(tflite).outputs[0]
    ]
    assert np.all(np.abs(two - model(rows.x_test[:2]).numpy()) <= bound)
    assert work.macs(tflite).macs.sum() == 4_176  # 8 steps × 4 × (8·8 + 8·8) + 8·10
    assert sizes.breakdown(tflite)["weights_float32"] >= 4 * (4 * 8 * 8 * 2 + 8 * 10)


def test_a_dynamic_batch_lstm_is_refused_with_the_fix():
    model = build(L.LSTM(8, name="lstm"), L.Dense(10), shape=(8, 8))
    with pytest.raises(
        converter.ConversionError, match=r"'lstm' needs a fixed batch size.*with_batch_size"
    ):
        to_tflite.quantize(model, "float32")
    assert Runtime(to_tflite.quantize(models.with_batch_size(model, 1), "float32")).fixed_batch == 1


@pytest.mark.parametrize("form", ["function", "generator", "dataset", "batched dataset"])
def test_calibration_in_tensorflows_own_forms(float_model, calibration, form):
    def representative_dataset():
        for sample in calibration:
            yield [sample[np.newaxis]]

    given = {
        "function": representative_dataset,
        "generator": representative_dataset(),
        "dataset": tf.data.Dataset.from_tensor_slices(calibration),
        "batched dataset": tf.data.Dataset.from_tensor_slices(calibration).batch(8),
    }[form]
    assert to_tflite.quantize(float_model, "full_integer", given) == to_tflite.quantize(
        float_model, "full_integer", calibration
    )


def test_an_inline_tf_op_under_qat_is_named_and_the_other_layers_still_train(digits):
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, name="conv")(inputs)
    x = x * keras.activations.relu(x + 3, max_value=6) / 6  # hard-swish, inline
    model = keras.Model(inputs, L.Dense(10, name="dense")(L.Flatten(name="flatten")(x)))
    with pytest.raises(ValueError, match=r"TFOpLambda, an inline TensorFlow op.*qat_layers"):
        fit.quantize_aware(model)
    assert converter.is_qat(fit.quantize_aware(model, layers=("conv", "dense")))


def test_per_tensor_on_a_qat_model_is_refused_not_ignored(qat_model, calibration):
    with pytest.raises(
        ValueError, match="per_channel=False does not apply to a quantization-aware"
    ):
        to_tflite.quantize(qat_model, "integer_only", calibration, per_channel=False)


def test_a_nested_model_names_its_inner_layers(digits, calibration):
    with models.fresh_names():
        backbone = keras.Sequential(
            [L.Conv2D(4, 3, name="conv_a"), L.ReLU(name="relu_a"), L.Conv2D(4, 3, name="conv_b")],
            name="backbone",
        )
        inputs = keras.Input((8, 8, 1))
        model = keras.Model(inputs, L.Dense(10, name="logits")(L.Flatten()(backbone(inputs))))
    model = trained(model, digits)
    assert list(local_rows(model, digits, calibration).layer) == [
        "conv_a",
        "conv_b",
        "flatten",
        "logits",
    ]
    kept = flatbuffer.read(
        to_tflite.quantize(model, "full_integer", calibration, keep_float=("conv_b",))
    )
    assert [kept.tensors[op.outputs[0]].type for op in naming.compute_ops(kept)][:2] == [
        "INT8",
        "FLOAT32",
    ]


def test_two_ops_from_one_layer_are_two_rows_and_plot(digits, calibration):
    norm = L.Normalization()
    norm.adapt(digits.x_train.reshape(len(digits.x_train), -1))
    model = trained(build(L.Flatten(), norm, L.Dense(10, activation="softmax")), digits)
    rows = local_rows(model, digits, calibration)
    assert rows.layer.is_unique and {"normalization", "normalization/mul"} <= set(rows.layer)
    table = per_layer.layer_errors(
        to_tflite.quantize(model, "full_integer", calibration),
        to_tflite.quantize(model, "float32"),
        digits.x_test[:50],
        keras_model=model,
    )
    assert plots.layer_errors(table).axes


def test_qat_refuses_what_tfmot_would_hang_or_fail_on_before_wrapping():
    inputs = keras.Input((8, 8, 1))
    pair = keras.Model(
        inputs,
        keras.layers.Conv2D(4, 3, name="c")(keras.layers.SeparableConv2D(4, 3, name="sep")(inputs)),
    )
    with pytest.raises(
        ValueError,
        match=r"'sep' \(SeparableConv2D in a model with Conv2D layers: .*DepthwiseConv2D",
    ):
        fit.quantize_aware(pair)  # tfmot 0.8.1 would loop forever
    inputs = keras.Input((8, 8, 1))
    apart = keras.Model(
        inputs,
        keras.layers.Conv2D(4, 3)(
            keras.layers.UpSampling2D()(keras.layers.SeparableConv2D(4, 3, name="sep")(inputs))
        ),
    )
    with pytest.raises(ValueError, match=r"'sep' \(SeparableConv2D in a model with Conv2D"):
        fit.quantize_aware(apart)  # a layer between them: still loops forever
    inputs = keras.Input((6,))
    lam = keras.Model(
        inputs,
        keras.layers.Dense(3, name="d")(keras.layers.Lambda(lambda t: t * 2, name="lam")(inputs)),
    )
    with pytest.raises(ValueError, match=r"'lam' \(Lambda: .*replace it with a built-in layer"):
        fit.quantize_aware(lam, layers=("d",))


def test_ops_that_compute_shapes_get_rows_that_say_why_not_a_crash(digits, calibration):
    """LayerNormalization converts to SHAPE, FILL, PACK, RSQRT, ... ops: every one gets a row in
    both views, computed or saying why not, and the activation table says which outputs it lacks."""
    with models.fresh_names():
        inputs = keras.Input(digits.sample_shape)
        x = keras.layers.LayerNormalization(name="norm")(
            keras.layers.Conv2D(4, 3, name="conv")(inputs)
        )
        model = keras.Model(inputs, keras.layers.Dense(10, name="out")(keras.layers.Flatten()(x)))
    tflite, float_tflite = (
        to_tflite.quantize(model, "full_integer", calibration),
        to_tflite.quantize(model, "float32"),
    )
    table = per_layer.layer_errors(tflite, float_tflite, digits.x_test[:20], keras_model=model)
    pair = capture.pair(tflite, float_tflite, model)
    for view in per_layer.VIEWS:
        rows = table[table.view == view]
        assert list(rows.layer) == pair.names
        assert (
            rows.mean_squared_error.notna() | rows.note.str.startswith("not computed, because")
        ).all()
    assert table.query("layer == 'conv'").mean_squared_error.notna().all()
    activations = buckets.activation_table(pair, digits.x_test[:20])
    assert (
        activations.scale.notna() | activations.note.str.startswith("not computed, because")
    ).all()


@pytest.mark.parametrize("mode", ["full_integer", "int16x8"])
@pytest.mark.parametrize("kind", ["tanh", "sigmoid", "max"])
def test_fixed_output_grids_of_tanh_and_logistic_and_max_reduction_sharing_its_input_grid(
    digits, calibration, mode, kind
):
    with models.fresh_names():
        inputs = keras.Input(digits.sample_shape)
        conv = keras.layers.Conv2D(4, 3, name="conv")(inputs)
        x = (
            keras.layers.GlobalMaxPooling2D(name=kind)(conv)
            if kind == "max"
            else keras.layers.Flatten()(keras.layers.Activation(kind, name=kind)(conv))
        )
        model = keras.Model(inputs, keras.layers.Dense(10, name="out")(x))
    tflite = to_tflite.quantize(model, mode, calibration)
    pair = capture.pair(tflite, to_tflite.quantize(model, "float32"), model)
    assert pair.layer(kind).op == {"tanh": "TANH", "sigmoid": "LOGISTIC", "max": "REDUCE_MAX"}[kind]
    tolerance.assert_grids_equal(converter_grids.converter_grids(pair, calibration), tflite)


def test_a_model_with_token_ids_is_told_which_modes_it_can_use():
    with models.fresh_names():
        inputs = keras.Input((5,), dtype="int32")
        model = keras.Model(
            inputs,
            keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Embedding(20, 4)(inputs))),
        )
    with pytest.raises(ValueError, match=r"takes int32 .*use mode 'dynamic_range'"):
        to_tflite.quantize(model, "full_integer", np.zeros((4, 5), np.int32))
    assert flatbuffer.read(to_tflite.quantize(model, "float32")).tensors[0].type == "INT32"


def test_a_model_with_two_outputs_is_refused_by_name_where_qlab_needs_one(digits):
    with models.fresh_names():
        inputs = keras.Input(digits.sample_shape)
        flat = keras.layers.Flatten()(inputs)
        model = keras.Model(
            inputs, [keras.layers.Dense(10, name="a")(flat), keras.layers.Dense(2, name="b")(flat)]
        )
    with pytest.raises(ValueError, match="1 input.* and 2 output.*one input and one output"):
        fit.train_model(model, digits, epochs=1, progress=False)
    with pytest.raises(
        ValueError, match="one input and one output; this one has 1 input.* and 2 output"
    ):
        Runtime(to_tflite.quantize(model, "float32"))


def test_the_engine_names_the_ops_it_lacks_in_an_integer_only_file(digits, calibration):
    from qlab import intmath

    with models.fresh_names():
        inputs = keras.Input(digits.sample_shape)
        x = keras.layers.LayerNormalization()(keras.layers.Conv2D(4, 3)(inputs))
        model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    with pytest.raises(
        intmath.IntegerModelError, match=r"ops .*SHAPE.* not implemented by qlab.intmath"
    ):
        intmath.IntegerModel(to_tflite.quantize(model, "integer_only", calibration))
