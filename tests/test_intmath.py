"""The NumPy integer engine agrees bit for bit with LiteRT, and says clearly what it cannot run."""

import platform

import numpy as np
import pytest
from tolerance import softmax_sum_atol

import qlab  # noqa: F401
from qlab import artifacts, intmath
from qlab.conversion import to_tflite
from qlab.intmath import IntegerModelError, fixedpoint, integer_ops
from qlab.intmath.litert import run_litert
from qlab.tflite import flatbuffer
from qlab.tflite.runtime import Runtime
from qlab.training import data, fit

SEED0 = fit.TrainConfig(seed=0)

X86_KERNELS = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="the engine's builtin and xnnpack rules are LiteRT's x86-64 kernels' "
    f"(qlab.intmath.engine); on {platform.machine()} LiteRT's own kernels round otherwise "
    "(aarch64 under QEMU: builtin as XNNPACK, 1 LSB apart from the x86 rule in conv and "
    "fully connected, softmax up to 10 LSB)",
)
"""For the tests that hold the engine to LiteRT's builtin or XNNPACK kernels bit for bit."""


@pytest.fixture(scope="module")
def int8_tflite():
    return artifacts.quantized(SEED0, "integer_only", progress=False)


@pytest.fixture(scope="module")
def models(int8_tflite):
    """The float model's int8 and uint8-I/O files, and the QAT model's (per-tensor dense weights,
    zero points other than -128)."""
    return {
        "integer_only": int8_tflite,
        "integer_only_uint8": artifacts.quantized(SEED0, "integer_only_uint8", progress=False),
        "qat": artifacts.quantized(
            fit.TrainConfig(training="qat", seed=0), "integer_only", progress=False
        ),
    }


@pytest.fixture(scope="module")
def q_test(int8_tflite, digits):
    return intmath.IntegerModel(int8_tflite).quantize_input(digits.x_test)


def small_model(*layers):
    import tf_keras as keras

    inputs = keras.Input(shape=data.IMAGE_SHAPE)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def assert_same_tensors(tflite, ours, theirs):
    table = intmath.compare(tflite, ours, theirs)
    assert table.different.sum() == 0, f"{ours.kernels} vs {theirs.kernels}:\n{table}"
    np.testing.assert_array_equal(ours.output, theirs.output)


# -- bit-exact agreement ------------------------------------------------------------------------
@X86_KERNELS
@pytest.mark.parametrize("name", ["integer_only", "integer_only_uint8", "qat"])
def test_every_tensor_matches_litert_builtin_on_all_test_images(models, digits, name):
    tflite = models[name]
    q = intmath.IntegerModel(tflite).quantize_input(digits.x_test)
    ours, theirs = intmath.run_integer(tflite, q), run_litert(tflite, q, "builtin")
    assert len(ours.tensors) == len(theirs.tensors) == len(intmath.IntegerModel(tflite).steps) + 1
    assert ours.output.dtype == theirs.output.dtype and ours.output.shape == (450, 10)
    assert_same_tensors(tflite, ours, theirs)


@pytest.mark.parametrize("kernels", ["reference", pytest.param("xnnpack", marks=X86_KERNELS)])
@pytest.mark.parametrize("name", ["integer_only", "qat"])
def test_reference_and_xnnpack_rules_match_their_kernels_too(models, digits, name, kernels):
    tflite = models[name]
    q = intmath.IntegerModel(tflite).quantize_input(digits.x_test)
    assert_same_tensors(
        tflite, intmath.run_integer(tflite, q, kernels), run_litert(tflite, q, kernels)
    )


@X86_KERNELS
def test_padding_strides_and_relu6_match(calibration, digits):
    import tensorflow as tf
    import tf_keras as keras

    model = small_model(
        keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(5, (2, 3), activation=tf.nn.relu6),
        keras.layers.Flatten(),
        keras.layers.Dense(7, activation=tf.nn.relu6),
        keras.layers.Dense(10, activation="softmax"),
    )
    tflite = to_tflite.quantize(model, "integer_only", calibration)
    steps = intmath.IntegerModel(tflite).steps
    assert steps[0].params["padding"] == "SAME" and steps[0].params["stride"] == (2, 2)
    assert {s.op.activation for s in steps} >= {"RELU", "RELU6"}
    q = intmath.IntegerModel(tflite).quantize_input(digits.x_test)
    for kernels in intmath.KERNELS:
        assert_same_tensors(
            tflite, intmath.run_integer(tflite, q, kernels), run_litert(tflite, q, kernels)
        )


@X86_KERNELS
def test_both_softmax_rules_match_litert_on_random_logits():
    """The digits model's logits exercise few softmax inputs; random rows exercise all 256."""
    import tf_keras as keras

    rng = np.random.default_rng(0)
    inputs = keras.Input(shape=(10,))
    model = keras.Model(inputs, keras.layers.Softmax()(inputs))
    logits = rng.integers(-128, 128, (5000, 10)).astype(np.int8)
    lut_vs_fixed = []
    for spread in (2.0, 30.0):
        calibration = rng.uniform(-spread, spread, (64, 10)).astype(np.float32)
        tflite = to_tflite.quantize(model, "integer_only", calibration)
        assert [s.op.name for s in intmath.IntegerModel(tflite).steps] == ["SOFTMAX"]
        for kernels in ("builtin", "reference"):
            np.testing.assert_array_equal(
                intmath.run_integer(tflite, logits, kernels).output,
                Runtime(tflite, kernels=kernels).invoke_raw(logits),
            )
        scale = float(intmath.IntegerModel(tflite).input.scale[0])
        lut = integer_ops.softmax_lut(logits, scale, 1.0, 1 / 256, -128).astype(int)
        lut_vs_fixed.append(np.abs(lut - integer_ops.softmax_fixed_point(logits, scale, 1.0)))
    # the float32 table (builtin) and the fixed-point exp (reference) disagree rarely, by 1 LSB
    assert max(d.max() for d in lut_vs_fixed) <= 1
    assert sum(np.count_nonzero(d) for d in lut_vs_fixed) < 0.001 * logits.size * 2


def test_one_sample_gives_the_same_integers_as_a_batch(int8_tflite, q_test):
    batch = intmath.run_integer(int8_tflite, q_test[:5]).output
    one = np.concatenate([intmath.run_integer(int8_tflite, q).output for q in q_test[:5]])
    np.testing.assert_array_equal(batch, one)


# -- the arithmetic, by hand ----------------------------------------------------------------------
def test_quantize_multiplier_and_the_fixed_point_rescale():
    m, shift = fixedpoint.quantize_multiplier([0.5, 1.0, 0.75, 2.0**-40, 0.0])
    assert m.tolist() == [2**30, 2**30, 3 * 2**29, 0, 0] and shift.tolist() == [0, 1, 0, 0, 0]
    rng = np.random.default_rng(1)
    real = rng.uniform(
        1e-4, 1e-3, 200
    )  # multipliers, not a tolerance: right shifts of 9 to 13 bits, as in digits
    acc = rng.integers(-(2**20), 2**20, (1000, 200))
    m, shift = fixedpoint.quantize_multiplier(real)
    exact = acc * (m * 2.0 ** (shift - 31))  # exact in float64 for these magnitudes
    for ties in ("away", "up"):
        scaled = fixedpoint.multiply_by_quantized_multiplier(acc, m, shift, ties)
        assert (
            np.abs(scaled - exact).max() <= 0.5 + 2**-10
        )  # two roundings: 1/2 + 2^-(right shift + 1) LSB
        assert np.mean(scaled != np.round(exact)) < 0.01  # and rarely differs from rounding once
    # the two tie rules differ only on negative halves
    assert fixedpoint.rounding_divide_by_pot(np.array([-5, 5, -6]), 1, "away").tolist() == [
        -3,
        3,
        -3,
    ]
    assert fixedpoint.rounding_divide_by_pot(np.array([-5, 5, -6]), 1, "up").tolist() == [-2, 3, -3]


def test_activation_range_is_a_clamp_at_the_zero_point():
    assert fixedpoint.activation_range("RELU", 0.05, -128, np.int8) == (-128, 127)
    assert fixedpoint.activation_range("RELU", 0.05, -9, np.int8) == (-9, 127)
    assert fixedpoint.activation_range("RELU6", 0.05, -128, np.int8) == (-128, -8)
    assert fixedpoint.activation_range("NONE", 0.05, 3, np.uint8) == (0, 255)


def test_walking_conv1_by_hand_gives_the_engines_integers(int8_tflite, q_test):
    engine = intmath.IntegerModel(int8_tflite)
    conv1 = engine.steps[0]
    p = conv1.params
    acc = engine.accumulate(conv1, q_test[:1])
    patch = q_test[0, 2:5, 3:6, 0].astype(np.int64) - p["input_zero_point"]
    assert acc[0, 2, 3, 7] == np.sum(patch * p["weights"][7, :, :, 0]) + p["bias"][7]
    out = np.clip(
        fixedpoint.multiply_by_quantized_multiplier(acc, p["multiplier"], p["shift"], "up")
        + p["output_zero_point"],
        p["act_min"],
        p["act_max"],
    )
    np.testing.assert_array_equal(out, engine.run(q_test[:1]).tensors[conv1.output.index])


# -- how far other rules land ----------------------------------------------------------------------
@X86_KERNELS
def test_xnnpack_differs_from_builtin_by_at_most_one_lsb_per_op(int8_tflite, q_test):
    builtin = run_litert(int8_tflite, q_test, "builtin")
    xnnpack = run_litert(int8_tflite, q_test, "xnnpack")
    # keeping intermediates splits XNNPACK's partition per op; the output must not change
    np.testing.assert_array_equal(
        xnnpack.output, Runtime(int8_tflite, "xnnpack").invoke_raw(q_test)
    )
    local = intmath.compare(
        int8_tflite,
        intmath.run_integer(int8_tflite, q_test, "xnnpack", inputs_from=builtin.tensors),
        builtin,
    )
    assert local.max_lsb.max() <= 1 and local.different.sum() > 0  # rounding once vs twice
    assert (local.different / local["values"]).max() < 0.01
    chained = intmath.compare(int8_tflite, xnnpack, builtin)
    assert chained.different.iloc[-1] > 0  # differences compound through the layers ...
    assert chained.max_lsb.iloc[:-1].max() <= 2  # ... but stay small before the softmax
    assert chained.max_lsb.iloc[-1] <= 32 and chained.different.iloc[-1] < 0.05 * 4500


def test_float_shortcut_differs_somewhere_and_by_little(int8_tflite, q_test, digits):
    engine = intmath.IntegerModel(int8_tflite)
    builtin = engine.run(q_test)
    local = intmath.compare(
        int8_tflite, engine.run_float_shortcut(q_test, builtin.tensors), builtin
    )
    assert local.different.sum() > 0 and local.max_lsb.max() <= 1
    shortcut = engine.run_float_shortcut(q_test)
    chained = intmath.compare(int8_tflite, shortcut, builtin)
    assert chained.max_lsb.iloc[-1] <= 32 and chained.different.iloc[-1] < 0.05 * 4500
    same_class = np.mean(shortcut.output.argmax(1) == builtin.output.argmax(1))
    assert same_class > 0.98


# -- the article's 26.12 % -----------------------------------------------------------------------
@X86_KERNELS
def test_raw_pixels_cast_to_int8_collapse_and_quantizing_fixes_it(int8_tflite, digits, q_test):
    engine = intmath.IntegerModel(int8_tflite)
    wrong = engine.run(digits.x_test.astype(np.int8)).output
    right = engine.run(q_test).output

    def accuracy(out):
        return np.mean(out.argmax(axis=1) == digits.y_test)

    assert accuracy(wrong) < 0.6 and accuracy(right) > 0.95
    probs = engine.dequantize_output(right)
    atol = softmax_sum_atol(probs.shape[1], float(engine.output.scale[0]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=atol)
    # the engine is LiteRT's builtin kernels bit for bit (above), and both dequantize the same
    # integers the same way: equal (XNNPACK's rounding differs, by the LSB counts tested above)
    np.testing.assert_array_equal(probs, Runtime(int8_tflite, "builtin").predict(digits.x_test))


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode, kind",
    [
        ("float32", "a float32 model"),
        ("dynamic_range", "a dynamic_range model"),
        ("full_integer", "a full_integer model"),
    ],
)
def test_models_that_are_not_integer_only_are_refused(mode, kind, q_test):
    tflite = artifacts.quantized(SEED0, mode, progress=False)
    with pytest.raises(
        IntegerModelError, match=rf"needs an integer-only model .*float32 input .*{kind}"
    ):
        intmath.run_integer(tflite, q_test)


def test_an_op_the_engine_lacks_is_named(calibration, q_test):
    import tf_keras as keras

    model = small_model(
        keras.layers.Conv2D(4, 3),
        keras.layers.Activation("tanh"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    )
    tflite = to_tflite.quantize(model, "integer_only", calibration)
    assert "TANH" in [op.name for op in flatbuffer.read(tflite).ops]
    with pytest.raises(
        IntegerModelError, match="op TANH is not implemented .*implemented: ADD, .*CONV_2D"
    ):
        intmath.run_integer(tflite, q_test)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda q: q.astype(np.float32),
            r"needs input of dtype int8 .*got float32.*quantize_input",
        ),
        (lambda q: q.astype(np.uint8), r"needs input of dtype int8 .*got uint8"),
        (lambda q: q[:, :4], r"shape \(450, 4, 8, 1\).*\(n, 8, 8, 1\)"),
        (lambda q: q.reshape(450, 64), r"shape \(450, 64\)"),
        (lambda q: q[:0], r"non-empty batch"),
    ],
)
def test_wrong_input_is_refused(int8_tflite, q_test, make, message):
    with pytest.raises(ValueError, match=message):
        intmath.run_integer(int8_tflite, make(q_test))


def test_unknown_kernels_are_refused(int8_tflite, q_test):
    with pytest.raises(
        ValueError, match="unknown kernels 'gpu'; valid: xnnpack, builtin, reference"
    ):
        intmath.run_integer(int8_tflite, q_test, kernels="gpu")
