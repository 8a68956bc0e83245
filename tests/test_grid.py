"""qlab.analysis.grid: the grids qlab fits are the converter's, tensor for tensor; the round
trip behaves."""

import numpy as np
import pytest
import tolerance

from qlab import artifacts
from qlab.analysis import capture, converter_grids, grid
from qlab.conversion import to_tflite
from qlab.tflite import flatbuffer

MODES = ("full_integer", "integer_only", "integer_only_uint8", "int16x8", "dynamic_range")


@pytest.fixture(scope="module")
def tflites():
    return artifacts.convert_all([("float", m) for m in ("float32", *MODES)], progress=False)


# Weights are fitted to the same constants the converter reads; activation ranges come from running
# the float model on the calibration images, which the converter does on TensorFlow's own copy of
# the TFLite interpreter and qlab on LiteRT, summing in other orders: tolerance.grid_scale_rtol.
def assert_grids_equal(tflite, float_tflite, calibration):
    predicted = converter_grids.converter_grids(capture.pair(tflite, float_tflite), calibration)
    tolerance.assert_grids_equal(predicted, tflite)


@pytest.mark.parametrize("mode", MODES)
def test_every_scale_and_zero_point_equals_the_converters(tflites, calibration, mode):
    assert_grids_equal(tflites[("float", mode)], tflites[("float", "float32")], calibration)


def test_per_tensor_weights_too(float_model, calibration, tflites):
    tflite = to_tflite.quantize(float_model, "full_integer", calibration, per_channel=False)
    weights = [t for t in flatbuffer.read(tflite).tensors if t.data is not None and t.quantized]
    assert weights and not any(t.per_axis for t in weights)
    assert_grids_equal(tflite, tflites[("float", "float32")], calibration)


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12, 16])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("axis", [None, 0])
def test_round_trip_error_is_at_most_half_a_step_inside_the_range(bits, symmetric, axis):
    x = np.random.default_rng(bits).normal(0.3, 1.0, (4, 500))
    g = grid.fit(x, bits, symmetric=symmetric, axis=axis)
    step = g.scale[:, None] if axis == 0 else g.scale[0]
    error = np.abs(x - g.round_trip(x))
    # half a step, plus float64's x / scale, the product back and the subtraction (3 roundings)
    assert np.all(error <= step / 2 + tolerance.gamma(3, tolerance.U64) * (np.abs(x) + step))
    assert g.levels == 2**bits - (1 if symmetric and bits <= 8 else 0)
    assert np.all(g.round_trip(np.zeros((4, 1))) == 0)  # zero is always exact
    assert len(g.edges(0)) == g.levels + 1
    first = g.channel(0)  # every level's value is a fixed point of the round trip
    # (q - zp) * scale divided by scale rounds back to q, and the same product follows: exact
    np.testing.assert_array_equal(first.round_trip(first.centers()), first.centers())


def test_asymmetric_grid_of_a_relu_output_starts_at_zero_and_uses_every_level():
    x = np.linspace(0, 6, 1001)
    g = grid.activations(x)
    assert g.zero_point[0] == -128 and g.scale[0] == np.float32(6 / 255)
    assert len(np.unique(g.quantize(x))) == 256
    assert g.high[0] == pytest.approx(
        6, rel=2 * tolerance.U32
    )  # 255 x float32(6 / 255): one rounding


def test_clip_and_values_beyond_the_range():
    g = grid.fit(range=(-1.0, 1.0), bits=8, symmetric=True)
    assert g.round_trip([5.0])[0] == pytest.approx(
        1.0, rel=2 * tolerance.U32
    )  # 127 x float32(1 / 127)
    assert g.clip([5.0, -5.0]).tolist() == [g.high[0], g.low[0]]  # the grid's own ends, copied


def test_unsigned_and_bias_grids():
    u = grid.fit(range=(0.0, 2.0), bits=8, signed=False)
    assert (u.qmin, u.qmax, int(u.zero_point[0])) == (0, 255, 0)
    w = grid.weights(np.array([[1.0, -0.5], [0.2, 0.1]]))
    b = grid.bias(grid.activations(range=(0, 4.0)), w)
    np.testing.assert_array_equal(
        b.scale, np.float32(4 / 255) * w.scale.astype(np.float32)
    )  # one float32 product
    assert b.bits == 32 and b.per_axis


@pytest.mark.parametrize("bits", [1, 17, 0, 2.5, True, "8"])
def test_bits_outside_2_to_16_are_refused(bits):
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 16"):
        grid.fit(np.ones(3), bits)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: grid.fit(np.zeros((0, 3))), "empty"),
        (lambda: grid.fit(np.array([1.0, np.nan])), "NaN"),
        (lambda: grid.fit(), "pass the tensor"),
        (lambda: grid.fit(range=(2.0, 1.0)), "min is above max"),
        (lambda: grid.fit(np.ones((2, 3)), axis=4), "axis 4 does not exist"),
        (
            lambda: grid.weights(np.ones((3, 2))).quantize(np.ones((2, 3))),
            "3 channels along axis 0",
        ),
        (lambda: grid.weights(np.ones((3, 2))).edges(), "pass channel="),
    ],
)
def test_bad_input_says_what_was_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_float_tensor_has_no_grid(tflites):
    float_tensor = flatbuffer.read(tflites[("float", "float32")]).tensors[0]
    with pytest.raises(ValueError, match="not quantized"):
        grid.of_tensor(float_tensor)
