"""Reading a .tflite file agrees with what the interpreter reports."""

import numpy as np
import pytest
from tolerance import WEIGHT_SCALE_RTOL

from qlab.conversion import to_tflite
from qlab.tflite import flatbuffer
from qlab.tflite.runtime import InvalidModelError, Runtime


@pytest.fixture(scope="module")
def int8_tflite(float_model, calibration):
    return to_tflite.quantize(float_model, "integer_only", calibration)


def test_tensors_match_the_interpreter(int8_tflite):
    model = flatbuffer.read(int8_tflite)
    rt = Runtime(int8_tflite, kernels="builtin")
    details = {d["name"]: d for d in rt.tensors()}
    assert model.size == len(int8_tflite)
    for t in model.tensors:
        d = details[t.name]
        assert np.dtype(d["dtype"]) == t.dtype
        np.testing.assert_array_equal(d["quantization_parameters"]["scales"], t.scale)
        np.testing.assert_array_equal(d["quantization_parameters"]["zero_points"], t.zero_point)
        if t.data is not None:
            np.testing.assert_array_equal(rt.interpreter.get_tensor(d["index"]), t.data)


def test_ops_and_options(int8_tflite, float_model):
    model = flatbuffer.read(int8_tflite)
    assert [op.name for op in model.ops] == [
        "CONV_2D",
        "CONV_2D",
        "CONV_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "FULLY_CONNECTED",
        "SOFTMAX",
    ]
    conv1 = model.ops[0]
    assert conv1.activation == "RELU" and flatbuffer.PADDINGS[conv1.option("padding")] == "VALID"
    kernel = model.tensors[conv1.inputs[1]]
    assert kernel.shape == (64, 3, 3, 1) and kernel.per_axis and kernel.quantized_dimension == 0
    assert np.all(kernel.zero_point == 0)
    # symmetric per-channel int8 weights: scale = max|w| / 127 per output channel (the converter's
    # float32 division against this one: tolerance.WEIGHT_SCALE_RTOL)
    w = float_model.get_layer("conv1").get_weights()[0]  # (3, 3, 1, 64)
    np.testing.assert_allclose(
        kernel.scale, np.abs(w).max(axis=(0, 1, 2)) / 127, rtol=WEIGHT_SCALE_RTOL
    )


def test_truncated_file_is_refused(int8_tflite):
    with pytest.raises(InvalidModelError):
        flatbuffer.read(int8_tflite[:3])
    with pytest.raises(InvalidModelError):
        flatbuffer.read(int8_tflite[: len(int8_tflite) // 2])
