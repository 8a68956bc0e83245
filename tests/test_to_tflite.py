"""Every mode converts, with the I/O and weight types its row promises; bad input is refused."""

import numpy as np
import pytest
import tf_keras as keras

from qlab.conversion import modes, to_tflite
from qlab.tflite import measure
from qlab.tflite.runtime import Runtime
from qlab.training import fit

WEIGHT_DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8}


@pytest.fixture(scope="module")
def converted(float_model, calibration):
    return {name: to_tflite.quantize(float_model, name, calibration) for name in modes.MODES}


@pytest.mark.parametrize("name", list(modes.MODES))
def test_mode_gives_its_io_and_weight_types(converted, name):
    mode, rt = modes.get(name), Runtime(converted[name], kernels="builtin")
    assert rt.input_dtype == np.dtype(mode.io) and rt.output_dtype == np.dtype(mode.io)
    conv2_kernel = next(t for t in rt.tensors() if tuple(t["shape"]) == (32, 3, 3, 64))
    assert np.dtype(conv2_kernel["dtype"]) == WEIGHT_DTYPES[mode.weights]
    if mode.activations in ("int8", "int16"):
        act = next(t for t in rt.tensors() if tuple(t["shape"]) == (1, 6, 6, 64))
        assert np.dtype(act["dtype"]) == np.dtype(mode.activations)


def test_dynamic_range_leaves_small_weight_tensors_in_float(converted):
    """The converter quantizes only weight tensors of 1,024 elements or more in this mode:
    conv1's 576-element kernel stays float32."""
    rt = Runtime(converted["dynamic_range"], kernels="builtin")
    conv1_kernel = next(t for t in rt.tensors() if tuple(t["shape"]) == (64, 3, 3, 1))
    assert np.dtype(conv1_kernel["dtype"]) == np.float32


@pytest.mark.parametrize("name", list(modes.MODES))
def test_every_mode_stays_close_to_keras(converted, float_model, digits, name):
    keras_acc = fit.keras_accuracy(float_model, digits)
    assert abs(measure.accuracy(converted[name], digits.x_test, digits.y_test) - keras_acc) <= 0.01


def test_qat_model_converts_in_integer_modes(qat_model, calibration, digits):
    for mode in modes.for_training("qat"):
        tflite = to_tflite.quantize(qat_model, mode.name, calibration)
        assert Runtime(tflite).input_dtype == np.dtype(mode.io)
        assert measure.accuracy(tflite, digits.x_test, digits.y_test) >= 0.95


def test_qat_model_refuses_float_modes(qat_model):
    with pytest.raises(ValueError, match="full_integer, integer_only, integer_only_uint8"):
        to_tflite.quantize(qat_model, "float16")


@pytest.mark.parametrize(
    "calibration, message",
    [
        (None, "needs calibration data"),
        (np.zeros((0, 8, 8, 1), np.float32), "empty"),
        (np.zeros((5, 8, 8), np.float32), r"shape \(8, 8\).*takes \(8, 8, 1\)"),
        (np.zeros((8, 8, 1), np.float32), "one sample"),
        (np.full((3, 8, 8, 1), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_calibration_is_refused_before_conversion(tiny_model, calibration, message):
    with pytest.raises(ValueError, match=message):
        to_tflite.quantize(tiny_model, "full_integer", calibration)


def test_unknown_mode(tiny_model):
    with pytest.raises(ValueError, match="valid modes: float32, dynamic_range"):
        to_tflite.quantize(tiny_model, "int4")


def _model_with(fn, name):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten(name="flat")(inputs)
    x = keras.layers.Lambda(fn, name=name)(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="out")(x))


def test_op_without_int8_kernel_names_the_layer(calibration):
    import tensorflow as tf

    model = _model_with(tf.sin, "wavy")
    with pytest.raises(
        to_tflite.ConversionError, match=r"SIN \(layer 'wavy'\) has no int8 kernel.*full_integer"
    ):
        to_tflite.quantize(model, "integer_only", calibration)
    # with float fallback the same model converts and runs
    tflite = to_tflite.quantize(model, "full_integer", calibration)
    assert Runtime(tflite).predict(calibration[:2]).shape == (2, 10)


def test_op_without_tflite_kernel_names_the_layer(calibration):
    import tensorflow as tf

    with pytest.raises(to_tflite.ConversionError, match=r"tf\.Erf in layer 'bell'"):
        to_tflite.quantize(_model_with(tf.math.erf, "bell"), "full_integer", calibration)


def test_conversion_is_deterministic(float_model, calibration):
    a = to_tflite.quantize(float_model, "integer_only", calibration)
    assert a == to_tflite.quantize(float_model, "integer_only", calibration)
