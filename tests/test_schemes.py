"""Custom QAT schemes: bit widths 2-8, the percentile quantizer, post-training fake-quant, and the
grid each fake-quant op uses (equal to qlab's Grid, value for value)."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tolerance import U32

import qlab  # noqa: F401
from qlab import arith
from qlab.analysis import fake_quant
from qlab.training import data, models, schemes

BAD_BITS = (1, 9, 0, 16, 4.0, 7.5, "8", None, True)


@pytest.fixture(scope="module")
def digits():
    return data.load()


@pytest.fixture(scope="module")
def untrained():
    """The digits CNN, untrained: the grids' arithmetic does not need a trained model."""
    with models.fresh_names():
        return models.build("digits_cnn")


def probe(g, ndim: int) -> np.ndarray:
    """Values that every grid level catches, kept away from bucket edges (a quarter step inside),
    plus values far outside the range (clipped), shaped for a tensor of `ndim` dimensions whose last
    axis holds a per-axis grid's channels."""
    channels = g.scale.size
    levels = np.arange(g.qmin, g.qmax + 1)
    offsets = np.array([-0.25, 0.0, 0.25])
    q = np.repeat(levels, offsets.size)[:, None] * np.ones((1, channels), np.int64)
    x = (
        arith.dequantize(q, g.scale, g.zero_point, axis=1)
        if g.per_axis
        else g.dequantize(q.ravel())[:, None]
    )
    x = x + np.tile(offsets, levels.size)[:, None] * g.scale[None, :]
    x = np.concatenate([x, 3 * g.low[None, :] - 1, 3 * g.high[None, :] + 1]).astype(np.float32)
    return x.reshape((-1,) + (1,) * (ndim - 2) + (channels,)) if g.per_axis else x.ravel()


def assert_same_as_grid(entry):
    g = entry.grid
    x = probe(g, len(entry.site.weight.shape) if entry.site.weight is not None else 2)
    out = fake_quant.apply(entry, x)
    expected = g.round_trip(x)
    span = float(max(np.abs(g.low).max(), np.abs(g.high).max()))
    # TensorFlow's op returns level·scale + nudged_min in float32 (qlab's nudge has its float32
    # scale and zero point, and the probe keeps a quarter step from every bucket edge, so the level
    # is the same): nudged_min = (qmin − zero point)·scale rounds once (u·span), level·scale once
    # (u·|level·scale| <= 2u·span), the sum once (u·span); qlab's level, a small integer times a
    # float32 scale, is exact in float64
    assert np.abs(out - expected).max() <= 4 * U32 * span, (entry.site.layer, entry.site.tensor)
    assert (
        len(np.unique(g.quantize(x))) == g.levels
    )  # every level was reached: the test is not vacuous


@pytest.mark.parametrize("weight_bits, activation_bits", [(8, 8), (3, 5), (2, 8)])
def test_fake_quant_grids_equal_qlab_grids(untrained, digits, weight_bits, activation_bits):
    model = schemes.quantize_bits(untrained, weight_bits, activation_bits)
    fake_quant.calibrate(model, data.calibration(digits.x_train, n=20))
    entries = fake_quant.grids(model)
    kinds = {(e.site.kind, e.grid.bits, e.grid.per_axis) for e in entries}
    assert ("weight", weight_bits, True) in kinds and (
        "activation",
        activation_bits,
        False,
    ) in kinds
    for entry in entries:
        assert_same_as_grid(entry)
        if (
            entry.site.kind == "weight"
        ):  # symmetric narrow range: zero point 0, levels -(2^(b-1) - 1)..2^(b-1) - 1
            assert entry.grid.narrow_range and np.all(entry.grid.zero_point == 0)
    table = fake_quant.table(model)
    assert set(table.bits) == {weight_bits, activation_bits} and len(table) == len(entries)


def test_custom_quantizer_grid_equals_qlab_grid(untrained, digits):
    configs = {"dense": schemes.BitsConfig(6, 4, schemes.PercentileQuantizer(4, percentile=99.0))}
    model = schemes.quantize_bits(untrained, 8, 8, configs=configs)
    calibration = data.calibration(digits.x_train, n=20)
    fake_quant.calibrate(model, calibration)
    custom = [
        e
        for e in fake_quant.grids(model)
        if isinstance(e.site.quantizer, schemes.PercentileQuantizer)
    ]
    assert len(custom) == 1 and custom[0].grid.bits == 4 and custom[0].site.layer == "quant_dense"
    assert_same_as_grid(custom[0])
    dense_weight = [
        e
        for e in fake_quant.grids(model)
        if e.site.layer == "quant_dense" and e.site.kind == "weight"
    ]
    assert dense_weight[0].grid.bits == 6 and not dense_weight[0].grid.per_axis
    # the range is the 1st and 99th percentiles of the dense layer's float outputs over the
    # calibration set
    with models.fresh_names():
        probe_model = keras.Model(untrained.input, untrained.get_layer("dense").output)
    outputs = probe_model(calibration).numpy()
    low, high = (
        custom[0].site.variables["min_var"].numpy(),
        custom[0].site.variables["max_var"].numpy(),
    )
    # calibration passes every value through its quantizers unchanged: the same TensorFlow ops on
    # the same float32 weights and the same 20 images (one batch) as the probe, in this process; the
    # percentiles (nearest rank) are elements of the same outputs, stored as float32: equal exactly
    assert (float(low), float(high)) == schemes.PercentileQuantizer(4, 99.0).range_of(outputs)
    assert high < outputs.max()  # the top 1 % is clipped


def test_percentile_quantizer_moves_its_range_in_training_only():
    q = schemes.PercentileQuantizer(8, percentile=99.0, ema_decay=0.0)
    variables = q.build(None, "probe", keras.layers.Layer())
    x = tf.constant(np.linspace(-1.0, 9.0, 1001, dtype=np.float32))
    q(x, False, variables)
    assert variables["max_var"].numpy() == 6.0  # inference: the range stays
    q(
        x, True, variables
    )  # training, no averaging: this batch's percentiles (ranks 10 and 990 of 0..1000)
    # 0·old + 1·new is new exactly, and both pick the same elements of x (ranks 1000·1/100 and
    # 1000·99/100 are whole numbers in float32 and float64): the same float32 values
    assert (float(variables["min_var"].numpy()), float(variables["max_var"].numpy())) == q.range_of(
        x.numpy()
    )
    again = schemes.PercentileQuantizer.from_config(q.get_config())
    assert again.get_config() == q.get_config()


def test_bits_config_round_trips_through_its_config():
    config = schemes.BitsConfig(3, 6, schemes.PercentileQuantizer(6, 99.5))
    again = schemes.BitsConfig(**config.get_config())
    assert again.get_config() == config.get_config()
    assert isinstance(again.activation_quantizer, schemes.PercentileQuantizer)


@pytest.mark.parametrize("bits", BAD_BITS)
def test_bits_outside_2_to_8_are_refused(untrained, bits):
    with pytest.raises(ValueError, match="whole number from 2 to 8"):
        schemes.quantize_bits(untrained, bits, 8)
    with pytest.raises(ValueError, match="activation_bits must be a whole number from 2 to 8"):
        schemes.quantize_bits(untrained, 8, bits)
    with pytest.raises(ValueError, match="from 2 to 8"):
        schemes.BitsConfig(bits, 8)
    with pytest.raises(ValueError, match="from 2 to 8"):
        schemes.PercentileQuantizer(bits)


def test_other_bad_input(untrained, digits):
    with pytest.raises(ValueError, match="no layer named nope"):
        schemes.quantize_bits(untrained, 4, 8, layers=("nope",))
    with pytest.raises(TypeError, match="QuantizeConfig"):
        schemes.quantize_bits(untrained, 4, 8, configs={"dense": "8 bits"})
    with pytest.raises(ValueError, match="percentile"):
        schemes.PercentileQuantizer(8, percentile=40)
    with pytest.raises(ValueError, match="no fake-quant ops"):
        fake_quant.calibrate(untrained, digits.x_test[:10])
    wrapped = schemes.quantize_bits(untrained, 4, 8)
    with pytest.raises(ValueError, match="calibration set must hold samples"):
        fake_quant.calibrate(wrapped, np.zeros((0,) + digits.sample_shape))
    with pytest.raises(ValueError, match="empty"):
        fake_quant.nudge(1.0, 1.0, 8)
    with models.fresh_names():
        lstm = models.build("lstm_rows")
    with pytest.raises(ValueError, match="lstm"):
        schemes.quantize_bits(lstm, 4, 8)
    with pytest.raises(ValueError, match="no layer named nope; "):  # one name, not its letters
        schemes.quantize_bits(untrained, 4, 8, layers="nope")
    with pytest.raises(ValueError, match="names no layer to quantize"):
        schemes.quantize_bits(untrained, 4, 8, layers=())
    with pytest.raises(ValueError, match="already wrapped for QAT; pass the float model"):
        schemes.quantize_bits(wrapped, 4, 8)


def test_named_layers_only(untrained, digits):
    model = schemes.quantize_bits(untrained, 4, 8, layers=("conv1", "dense"))
    fake_quant.calibrate(model, data.calibration(digits.x_train, n=20))
    weights = {e.site.layer for e in fake_quant.grids(model) if e.site.kind == "weight"}
    assert weights == {"quant_conv1", "quant_dense"}
    assert {"conv2", "conv3", "probs"} <= {layer.name for layer in model.layers}  # left float
    one = schemes.quantize_bits(untrained, 4, 8, layers="conv1")  # a single name is a 1-tuple
    assert {e.site.layer for e in fake_quant.grids(one) if e.site.kind == "weight"} == {
        "quant_conv1"
    }


def test_calibration_changes_no_weight_and_no_batchnorm_statistic(digits):
    """BatchNorm runs in inference mode while calibrating (no update of its moving statistics),
    Dropout drops nothing (the same ranges twice), and the float weights stay as they were."""
    with models.fresh_names():
        plain = models.build("mobilenet_mini")
        inputs = keras.Input(digits.sample_shape)
        x = keras.layers.Dropout(0.5)(keras.layers.Flatten()(inputs))
        dropping = keras.Model(inputs, keras.layers.Dense(10)(x))
    calibration = data.calibration(digits.x_train, n=30)
    for model in (plain, dropping):
        wrapped = schemes.quantize_bits(model, 8, 8)
        float_weights = {
            w.name: w.numpy() for w in wrapped.weights if not w.name.endswith(("_min:0", "_max:0"))
        }
        fake_quant.calibrate(wrapped, calibration)
        first = [e.grid.scale.copy() for e in fake_quant.grids(wrapped)]
        fake_quant.calibrate(wrapped, calibration)
        assert all(
            np.array_equal(a, e.grid.scale) for a, e in zip(first, fake_quant.grids(wrapped))
        )
        for w in wrapped.weights:
            if w.name in float_weights and "optimizer_step" not in w.name:
                assert np.array_equal(w.numpy(), float_weights[w.name]), w.name


@pytest.mark.parametrize("bits, narrow", [(2, False), (4, True), (8, False), (8, True)])
def test_nudge_is_tensorflows(bits, narrow):
    """Ranges that hold 0, that do not (the zero point clamps to an end), and tiny ones: the grid's
    round trip is TensorFlow's FakeQuantWithMinMaxVars output."""
    rng = np.random.default_rng(bits)
    for low, high in [
        (-1.0, 3.0),
        (0.3, 2.0),
        (-5.0, -0.5),
        (-1e-3, 2e-3),
        *rng.normal(0, 4, (8, 2)),
    ]:
        low, high = float(min(low, high)), float(max(low, high))
        g = fake_quant.nudge(low, high, bits, narrow)
        x = probe(g, 1)
        out = tf.quantization.fake_quant_with_min_max_vars(
            x, low, high, num_bits=bits, narrow_range=narrow
        ).numpy()
        span = float(max(abs(g.low[0]), abs(g.high[0])))
        assert np.abs(out - g.round_trip(x)).max() <= 4 * np.finfo(np.float32).eps * span, (
            low,
            high,
        )
