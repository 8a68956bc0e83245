"""The LiteRT wrapper: I/O quantization with each tensor's own parameters, clear errors."""

import numpy as np
import pytest
from tolerance import softmax_sum_atol

from qlab import arith
from qlab.conversion import to_tflite
from qlab.tflite.runtime import InvalidModelError, Runtime


@pytest.fixture(scope="module")
def int8_tflite(float_model, calibration):
    return to_tflite.quantize(float_model, "integer_only", calibration)


@pytest.fixture(scope="module")
def uint8_tflite(float_model, calibration):
    return to_tflite.quantize(float_model, "integer_only_uint8", calibration)


@pytest.mark.parametrize("fixture", ["int8_tflite", "uint8_tflite"])
def test_predict_quantizes_inputs_and_dequantizes_outputs(request, digits, fixture):
    rt = Runtime(request.getfixturevalue(fixture))
    x = digits.x_test[:20]
    s_in, z_in = rt.input["quantization"]
    s_out, z_out = rt.output["quantization"]
    info = np.iinfo(rt.input_dtype)
    q = np.clip(np.floor(x / s_in + 0.5) + z_in, info.min, info.max).astype(
        rt.input_dtype
    )  # x >= 0
    by_hand = (rt.invoke_raw(q).astype(np.int64) - z_out) * s_out
    # predict dequantizes the same integers in float64 and returns float32: by_hand rounded once
    np.testing.assert_array_equal(rt.predict(x), by_hand.astype(np.float32))
    probs = rt.predict(x)
    # softmax survives int8: each class within a step of its probability
    np.testing.assert_allclose(
        probs.sum(axis=1), 1.0, rtol=0, atol=softmax_sum_atol(probs.shape[1], s_out)
    )


def test_single_sample_and_batches_agree(int8_tflite, digits):
    rt = Runtime(int8_tflite)
    batch = rt.predict(digits.x_test[:5])
    one = np.concatenate([rt.predict(x) for x in digits.x_test[:5]])
    np.testing.assert_array_equal(batch, one)


def test_raw_pixels_cast_to_int8_reproduce_the_articles_collapse(int8_tflite, digits):
    """The article fed raw 0..16 pixels to the int8 model without its input scale."""
    rt = Runtime(int8_tflite)
    raw = rt.invoke_raw(digits.x_test.astype(np.int8))
    wrong = np.mean(np.argmax(raw, axis=1) == digits.y_test)
    right = np.mean(np.argmax(rt.predict(digits.x_test), axis=1) == digits.y_test)
    assert wrong < 0.6 and right > 0.95


def test_round_half_away_from_zero():
    np.testing.assert_array_equal(
        arith.round_half_away(np.array([-2.5, -0.5, 0.5, 1.5, 2.5])), [-3, -1, 1, 2, 3]
    )


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((2, 8, 8), np.float32), r"shape \(2, 8, 8\).*\(n, 8, 8, 1\)"),
        (np.zeros((2, 64), np.float32), r"shape \(2, 64\)"),
        (np.zeros((0, 8, 8, 1), np.float32), "empty"),
        (np.zeros((2, 8, 8, 1), np.int32), "predict\\(\\) takes real-valued"),
        (np.array([["a"] * 8] * 8)[None, ..., None], "numeric"),
    ],
)
def test_wrong_input_is_refused(int8_tflite, x, message):
    with pytest.raises(ValueError, match=message):
        Runtime(int8_tflite).predict(x)


def test_invoke_raw_wants_the_tensors_dtype(int8_tflite, digits):
    with pytest.raises(ValueError, match="dtype int8.*quantize_input"):
        Runtime(int8_tflite).invoke_raw(digits.x_test[:1])


@pytest.mark.parametrize("cut", [0, 7, 100, 0.5, 0.9])
def test_truncated_model_is_refused(int8_tflite, cut):
    end = int(len(int8_tflite) * cut) if isinstance(cut, float) else cut
    with pytest.raises(InvalidModelError, match="corrupt|truncated"):
        Runtime(int8_tflite[:end])


def test_garbage_is_refused(int8_tflite):
    with pytest.raises(InvalidModelError):
        Runtime(b"\x00" * 4 + b"TFL3" + b"\xff" * 200)
    with pytest.raises(TypeError):
        Runtime("model.tflite")


def test_kernels_and_threads_are_checked(int8_tflite):
    with pytest.raises(ValueError, match="xnnpack, builtin, reference"):
        Runtime(int8_tflite, kernels="gpu")
    with pytest.raises(ValueError, match="num_threads"):
        Runtime(int8_tflite, num_threads=0)


@pytest.mark.parametrize("kernels", ["xnnpack", "builtin", "reference"])
def test_every_kernel_choice_runs(int8_tflite, digits, kernels):
    probs = Runtime(int8_tflite, kernels=kernels).predict(digits.x_test)
    assert np.mean(np.argmax(probs, axis=1) == digits.y_test) > 0.95
