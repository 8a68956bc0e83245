"""Buckets, occupancy, rounding vs clipping, the clip sweep and before vs after the ReLU; their
figures; and every bad input refused with a message that says what to do."""

import numpy as np
import pytest
import tolerance
from matplotlib.figure import Figure
from tolerance import U32, U64, gamma

from qlab import artifacts
from qlab import plots as plots_grid
from qlab.analysis import buckets, capture, grid


@pytest.fixture(scope="module")
def models():
    return artifacts.convert_all(
        [("float", "float32"), ("float", "full_integer"), ("float", "dynamic_range")],
        progress=False,
    )


@pytest.fixture(scope="module")
def pair(models):
    return capture.pair(models[("float", "full_integer")], models[("float", "float32")])


@pytest.fixture(scope="module")
def dynamic(models):
    return capture.pair(models[("float", "dynamic_range")], models[("float", "float32")])


# -- one tensor on a hand-made grid ---------------------------------------------------------------
def test_sawtooth_is_within_half_a_step_inside_the_range_and_exact_at_levels():
    g = grid.activations(range=(-1.0, 3.0), bits=4)
    x = np.linspace(g.low[0] - 2, g.high[0] + 2, 5001)
    rounding, clipping = buckets.errors(x, g)
    inside = (x >= g.low[0]) & (x <= g.high[0])
    # Half a step, plus float64's roundings of x / scale, of |x / scale| + 1/2 (the rounding rule)
    # and of x - level; the level itself, a small integer times a float32 scale, is exact in
    # float64.
    slack = gamma(3, U64) * (np.abs(x) + g.scale[0])
    assert np.all(np.abs(rounding[inside]) <= g.scale[0] / 2 + slack[inside])
    assert np.all(clipping[inside] == 0) and np.all(rounding[~inside] == 0)
    # outside, the clipping error is x - clip(x), the same float64 subtraction (every point outside
    # lies a linspace step, 0.0016, beyond the range: far past rounding.SLACK of a step)
    np.testing.assert_array_equal(clipping[~inside], (x - np.clip(x, g.low[0], g.high[0]))[~inside])
    assert np.max(np.abs(rounding)) > 0.49 * g.scale[0]  # the teeth reach half a step
    # a level's centre, (edge + next edge) / 2, is the level itself exactly: each edge is a
    # half-integer times a float32 scale (exact in float64), their sum twice the level (exact)
    rounding, clipping = buckets.errors(g.centers(), g)
    np.testing.assert_array_equal(rounding, 0)
    assert not clipping.any()


def test_rounding_and_clipping_add_up_to_the_total():
    x = np.random.default_rng(0).standard_t(3, size=20000)  # long tails
    g = grid.activations(range=(-2.0, 2.0))
    s = buckets.split(x, g)
    assert s["rounding_mse"] + s["clipping_mse"] == pytest.approx(
        s["total_mse"], rel=tolerance.split_rtol(x.size)
    )
    # value by value the total is x - round_trip(x) itself (a clipped value's rounding part is 0
    # exactly, an unclipped one's clipping part 0.0): the same array, the same mean
    assert s["total_mse"] == np.mean((x - g.round_trip(x)) ** 2)
    assert s["clipped_fraction"] == np.mean((x < g.low[0]) | (x > g.high[0]))
    # inside the grid, errors are uniform over a step (t(3)'s density barely changes across one
    # step of 4/255): the rms is 1/sqrt(12) steps up to the sampling error of n values
    inside = x[(x > g.low[0]) & (x < g.high[0])]
    assert buckets.split(inside, g)["rmse/scale"] == pytest.approx(
        1 / np.sqrt(12), rel=tolerance.rounding_rms_rtol(inside.size)
    )


def test_occupancy_counts_levels_by_hand():
    g = grid.activations(range=(0.0, 25.5))  # scale 0.1, zero point -128
    s = g.scale[0]
    assert s == np.float32(0.1)  # by construction: 25.5 / 255, stored as the float32 nearest 0.1
    x = np.array(
        [0.0, 0.0, 0.12, 0.1, 0.5, 30.0, 25.5]
    )  # levels -128, -127 (twice), -123, 127 (twice)
    assert buckets.used_levels(x, g).tolist() == [4]
    w = np.array([[1.0, -1.0, 0.5], [2.0, 2.0, 2.0]])
    per_channel = grid.weights(w)  # scales 1/127 and 2/127: levels ±127, 64 | 127
    assert buckets.used_levels(w, per_channel).tolist() == [3, 1]
    occ = buckets.occupancy(w, per_channel)
    assert occ == {"levels": 255, "used": 3, "used_min": 1, "used_median": 2.0}
    table = buckets.bucket_table(x, g)
    assert len(table) == 256 and table["count"].sum() == x.size
    # level -127 stands for s, the float32 scale (0.1 + 1.5e-9): 0.12 and 0.1 land there, their
    # errors the float64 differences from s (0.02 and 0.01 on average but for s's own rounding)
    second = table.set_index("level").loc[-127]
    assert second["count"] == 2 and second["max_abs_error"] == abs(0.12 - s)
    assert second["mean_abs_error"] == (abs(0.12 - s) + abs(0.1 - s)) / 2
    # level 127 stands for 255 s: 30 is clipped to it, 4.5 away but for s's rounding
    top = table.set_index("level").loc[127]
    assert top["count"] == 2 and top["clipped"] == 1 and top["max_abs_error"] == 30 - 255 * s


# -- the layers of the deployed model --------------------------------------------------------------
def test_weight_table_every_quantized_layer_on_its_per_channel_grid(pair):
    table = buckets.weight_table(pair).set_index("layer")
    assert list(table.index) == ["conv1", "conv2", "conv3", "dense", "probs"]
    assert (table.levels == 255).all() and (table.grid == "per-axis").all()
    assert (table.clipped_fraction == 0).all()  # each channel's grid reaches its largest weight
    assert table.loc["conv1", "used_median"] <= 9  # 3x3x1 weights per output channel
    assert (table.used <= 255).all() and (table.used >= table.used_min).all()
    assert table["rmse/scale"].between(0.2, 0.32).all()


def test_deployed_activations_sit_on_the_levels_of_their_grid(pair, digits):
    for name in ("conv1", "conv2", "conv3", "dense", "probs", "probs/softmax"):
        values, deployed, g = buckets.layer_activations(pair, name, digits.x_test[:50])
        assert values.shape == deployed.shape
        # dequantized in float32, (q - z) * scale rounds once: within u of its level (the level
        # in float64, a small integer times a float32 scale, is exact), and inside the grid's ends
        # but for that rounding
        off = np.abs(deployed - g.round_trip(deployed))
        assert np.all(off <= gamma(1) * np.abs(deployed)), name
        assert deployed.min() >= g.low[0] - U32 * abs(g.low[0]) and deployed.max() <= g.high[
            0
        ] + U32 * abs(g.high[0])


def test_calibration_data_fits_the_grid_and_test_data_overshoots(pair, calibration, digits):
    on_calibration = buckets.activation_table(pair, calibration).set_index("layer")
    assert list(on_calibration.index) == [
        "conv1",
        "conv2",
        "conv3",
        "dense",
        "probs",
        "probs/softmax",
    ]
    relu = on_calibration.loc[["conv1", "conv2", "conv3", "dense"]]
    assert (relu.clipped_fraction == 0).all() and (relu.levels == 256).all()
    assert on_calibration.loc["probs/softmax", "clipped_fraction"] > 0  # 1.0 lies above 255/256
    on_test = buckets.activation_table(pair, digits.x_test).set_index("layer")
    overshoot = on_test["max"] > on_test["high"] + on_test["scale"]
    assert overshoot.any()
    assert (on_test.loc[overshoot, "clipping_mse"] > 0).all()


def test_clip_sweep_trades_rounding_for_clipping(pair):
    w, _ = buckets.layer_weights(pair, "conv2")
    sweep = buckets.clip_sweep(w, bits=4, symmetric=True)
    assert sweep.fraction.iloc[-1] == 1.0 and sweep.clipping_mse.iloc[-1] == 0
    assert np.all(np.diff(sweep.clipping_mse) <= 0)  # more range, less clipping
    assert sweep.rounding_mse.iloc[0] < sweep.rounding_mse.iloc[-1]
    np.testing.assert_allclose(
        sweep.rounding_mse + sweep.clipping_mse, sweep.total_mse, rtol=tolerance.split_rtol(w.size)
    )
    assert sweep.total_mse.idxmin() < len(sweep) - 1  # the best range is narrower than min..max


def test_a_grid_fitted_after_the_relu_has_more_levels_for_its_outputs(
    pair, float_model, calibration
):
    table = buckets.before_after(float_model, calibration).set_index("layer")
    terms = tolerance.path_terms(pair.float_tflite)
    assert (
        list(table.index)
        == buckets.relu_layers(float_model)
        == ["conv1", "conv2", "conv3", "dense"]
    )
    assert (table.usable_before < table.usable_after).all() and (table.usable_after == 256).all()
    assert (table.used_before <= table.usable_before).all() and (
        table.used_before < table.used_after
    ).all()
    assert (table.rmse_before > table.rmse_after).all() and (table.scale_ratio > 1).all()
    for name in table.index:  # "after" is what the converter chose
        out = pair.layer(name).output(pair)
        # TensorFlow's maximum of the layer against the converter's calibration interpreter's, each
        # through the float32 roundings on the layer's path: tolerance.activation_scale_rtol
        rtol = tolerance.activation_scale_rtol(terms[pair.layer(name).reference.outputs[0]])
        assert table.loc[name, "scale_after"] == pytest.approx(float(out.scale[0]), rel=rtol)
        assert table.loc[name, "zero_point_after"] == int(out.zero_point[0])


def test_every_figure_builds(pair, digits, calibration, float_model):
    w, g = buckets.layer_weights(pair, "conv2")
    values, deployed, ag = buckets.layer_activations(pair, "conv2", digits.x_test[:40])
    figures = [
        plots_grid.weight_histogram(w, g, channel=3),
        plots_grid.weight_histogram(w, g),
        plots_grid.weight_histograms(pair),
        plots_grid.activation_histogram(values, deployed, ag),
        plots_grid.activation_histograms(pair, digits.x_test[:40], ["conv1", "dense"]),
        plots_grid.bucket_errors(values, ag),
        plots_grid.bucket_errors(w, g, channel=0),
        plots_grid.rounding_vs_clipping(buckets.activation_table(pair, digits.x_test[:40])),
        plots_grid.clip_sweep(buckets.clip_sweep(values)),
        plots_grid.before_after(buckets.before_after(float_model, calibration[:20], ["conv1"])),
        plots_grid.before_after_ranges(
            capture.preactivation(float_model, "conv1", calibration[:20])
        ),
    ]
    assert all(isinstance(f, Figure) for f in figures)
    titles = [ax.get_title() for ax in figures[2].axes if ax.get_visible()]
    assert len(titles) == 5 and all("/255 levels" in t for t in titles)
    figures[2].canvas.draw()


# -- bad input -------------------------------------------------------------------------------------
def test_bad_tensors_are_refused():
    g = grid.activations(range=(0.0, 1.0))
    with pytest.raises(ValueError, match="empty"):
        buckets.split(np.zeros((0, 3)), g)
    with pytest.raises(ValueError, match="NaN"):
        buckets.bucket_table([1.0, np.nan], g)
    per_channel = grid.weights(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"4 channels along axis 0.*shape \(3, 4\).*fitted to"):
        buckets.occupancy(np.ones((3, 4)), per_channel)
    with pytest.raises(ValueError, match="per-axis.*pass channel= from 0 to 3"):
        buckets.bucket_table(np.ones((4, 3)), per_channel)
    with pytest.raises(ValueError, match="fractions must be in"):
        buckets.clip_sweep([1.0, 2.0], fractions=[0.0, 1.0])


def test_bad_layers_are_refused(pair, dynamic, float_model, calibration, models):
    with pytest.raises(
        KeyError, match="no layer 'conv9'.*conv1, conv2, conv3, flatten, dense, probs"
    ):
        buckets.layer_weights(pair, "conv9")
    with pytest.raises(ValueError, match="'flatten' is a RESHAPE op and has no weights"):
        buckets.layer_weights(pair, "flatten")
    with pytest.raises(
        ValueError, match="'conv1' keeps its weights in FLOAT32.*pick one of: conv2, conv3, dense"
    ):
        buckets.layer_weights(dynamic, "conv1")
    with pytest.raises(ValueError, match="'conv2' outputs FLOAT32.*full_integer"):
        buckets.layer_activations(dynamic, "conv2", calibration)
    with pytest.raises(ValueError, match="not quantized"):
        buckets.activation_table(dynamic, calibration)
    with pytest.raises(ValueError, match="no input samples"):
        buckets.activation_table(pair, calibration[:0])
    float32 = models[("float", "float32")]
    with pytest.raises(ValueError, match="no layer of this model has quantized weights"):
        buckets.weight_table(capture.pair(float32, float32))
    with pytest.raises(ValueError, match="'probs' ends in softmax, not relu"):
        buckets.before_after(float_model, calibration, ["probs"])
    with pytest.raises(KeyError, match="no layer 'flatten' with an activation"):
        buckets.before_after(float_model, calibration, ["flatten"])
