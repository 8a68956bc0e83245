"""The quantization explorer's compute function against qlab's own grid, bucket and split functions
and an independent Keras evaluation, on the digits CNN and mobilenet_mini (trained through the
cache, as tests/test_zoo.py obtains them) and on untrained models of other shapes; its widgets
wired to it; bad settings refused with a message naming the problem."""

import numpy as np
import pytest
import tolerance
from tolerance import U64, gamma

from qlab import artifacts
from qlab.analysis import capture, grid, rounding
from qlab.training import data, models, qat
from qlab.training.fit import TrainConfig
from qlab_workshop.explorer import QUANTIZE, Explorer, Settings, compute, histogram, show
from qlab_workshop.explorer.widgets import calibration_sizes

SETTINGS = [
    {},
    {"bits": 4, "clip": 0.7},
    {"bits": 3, "symmetric": True, "per_channel": False, "calibration": 10},
    {"bits": 6, "quantize": "weights"},
    {"bits": 2, "clip": 0.5, "quantize": "activations", "calibration": 1},
]


class Trained:
    """One zoo model from the cache, its data and its explorer."""

    def __init__(self, name: str):
        self.config = TrainConfig(model=name)
        self.data = data.load(self.config.dataset)
        self.model = artifacts.trained(self.config, self.data, progress=False)
        self.lab = Explorer(self.model, self.data)


@pytest.fixture(scope="module", params=["digits_cnn", "mobilenet_mini"])
def trained(request):
    return Trained(request.param)


def with_kernels(layer, kernels):
    """Keras weights of `layer` with its kernels replaced (channels-last arrays put back in
    shape)."""
    names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
    out = []
    for name, w in zip(names, layer.get_weights()):
        if name in kernels:
            k = kernels[name]
            out.append(k.reshape(w.shape).astype(w.dtype))
        else:
            out.append(w)
    return out


def oracle_accuracy(model, dataset, layer, site, kernels, activation_grid):
    """Accuracy computed apart from the explorer: the model's layers called one by one (the zoo
    models tested here are chains), the target's kernels swapped in, the site's output rounded."""
    target = model.get_layer(layer)
    saved = target.get_weights()
    try:
        target.set_weights(with_kernels(target, kernels))
        x = dataset.x_test
        for each in model.layers[1:]:
            x = each(x, training=False)
            if each.name == site and activation_grid is not None:
                x = activation_grid.round_trip(np.asarray(x)).astype(np.float32)
    finally:
        target.set_weights(saved)
    return float(np.mean(np.asarray(x).argmax(-1) == dataset.y_test))


def test_layers_are_read_from_the_model(trained):
    with_kernel = [
        each.name
        for each in trained.model.layers
        if any(w.name.split("/")[-1].startswith(("kernel", "depthwise")) for w in each.weights)
    ]
    assert trained.lab.layers == with_kernel
    if (
        trained.config.model == "mobilenet_mini"
    ):  # conv, BatchNorm, ReLU6: the activation after the ReLU, as converted
        assert (
            trained.lab.sites.layers["stem"] == "stem_relu"
            and trained.lab.sites.layers["probs"] == "probs"
        )


@pytest.mark.parametrize(
    "chosen", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()) or "default"
)
def test_compute_equals_qlabs_grid_bucket_and_split_functions(trained, chosen):
    lab, model = trained.lab, trained.model
    for layer in (lab.layers[0], lab.layers[-2]):
        settings = Settings(layer=layer, **chosen)
        result = lab.compute(settings)
        assert result.settings == settings and result.float_accuracy == lab.float_accuracy
        assert len(result.weights) == (0 if settings.quantize == "activations" else 1)
        assert (result.activations is None) == (settings.quantize == "weights")
        kernels = {}
        for part in result.weights:
            w = np.asarray(model.get_layer(layer).get_weights()[0], np.float64)
            w = w.reshape(w.shape[:-2] + (-1,)) if part.name == "depthwise_kernel" else w
            np.testing.assert_array_equal(part.values, w)
            axis = w.ndim - 1 if settings.per_channel else None
            low, high = grid.value_range(w, axis)
            expected = grid.fit(
                range=(low * settings.clip, high * settings.clip),
                bits=settings.bits,
                symmetric=settings.symmetric,
                axis=axis,
            )
            if settings.symmetric and settings.per_channel and settings.clip == 1:
                expected = grid.weights(
                    w, settings.bits, axis=axis
                )  # the converter's own weight grid
            assert_same_grid(part.grid, expected)
            assert_counts_and_split(part)
            if (
                not settings.per_channel
            ):  # the clip sweep fits the same per-tensor grid to the same values
                sweep = rounding.clip_sweep(
                    w, settings.bits, settings.symmetric, fractions=[settings.clip]
                )
                assert sweep.total_mse[0] == part.split["total_mse"]
            kernels[part.name] = part.grid.round_trip(w)
        grid_used = None
        if result.activations is not None:
            part = result.activations
            site = lab.sites.layers[layer]
            # TensorFlow twice (the explorer's probe on the whole test split, Keras' predict in
            # batches of 256): the same float32 network summed in possibly other orders,
            # tolerance.keras_bound apart
            test = capture.keras_outputs(model, trained.data.x_test, [site])[site].astype(
                np.float64
            )
            assert np.all(
                np.abs(part.values - test)
                <= tolerance.keras_bound(model, trained.data.x_test, site)
            )
            calibration = data.calibration(trained.data.x_train, settings.calibration)
            values = capture.keras_outputs(model, calibration, [site])[site]
            low, high = grid.value_range(values)
            bound = tolerance.keras_bound(model, calibration, site)
            ends = (tolerance.extreme_bound(-values, bound), tolerance.extreme_bound(values, bound))
            assert np.all(
                np.abs(np.concatenate(part.observed) - np.concatenate([low, high])) <= ends
            )
            if not settings.symmetric:  # the converter's activation grid
                assert_same_grid(
                    part.grid,
                    grid.activations(
                        range=(part.observed[0] * settings.clip, part.observed[1] * settings.clip),
                        bits=settings.bits,
                    ),
                )
            assert_counts_and_split(part)
            grid_used = part.grid
        expected = oracle_accuracy(
            model, trained.data, layer, lab.sites.layers[layer], kernels, grid_used
        )
        assert result.accuracy == expected  # the same float ops, in a graph or one layer at a time
        assert 0 < result.seconds < 30
        text = result.summary()
        assert (
            f"accuracy {100 * result.accuracy:.2f} %" in text
            and f"float {100 * lab.float_accuracy:.2f} %" in text
        )


def assert_same_grid(got, expected):
    np.testing.assert_array_equal(got.scale, expected.scale)
    np.testing.assert_array_equal(got.zero_point, expected.zero_point)
    assert (got.bits, got.narrow_range, got.axis) == (
        expected.bits,
        expected.narrow_range,
        expected.axis,
    )


def assert_counts_and_split(part):
    g = part.grid
    assert part.split == rounding.split(part.values, g)
    assert part.counts.sum() == part.values.size and part.counts.shape == (g.levels,)
    if not g.per_axis:
        table = rounding.bucket_table(part.values, g)
        np.testing.assert_array_equal(part.counts, table["count"])
        np.testing.assert_array_equal(part.clipped, table["clipped"])
    else:
        np.testing.assert_array_equal(
            part.counts, np.bincount(g.quantize(part.values).ravel() - g.qmin, minlength=g.levels)
        )
    assert part.clipped.sum() == round(part.split["clipped_fraction"] * part.values.size)
    assert part.clipped[1:-1].sum() == 0  # only the end levels collect clipped values


def test_the_model_is_float_again_after_every_compute(trained):
    lab = trained.lab
    before = [w.copy() for w in trained.model.get_weights()]
    first = lab.compute(Settings(layer=lab.layers[1], bits=2, clip=0.5))
    lab.compute(Settings(layer=lab.layers[0], bits=3, symmetric=True))
    again = lab.compute(Settings(layer=lab.layers[1], bits=2, clip=0.5))
    assert first.accuracy == again.accuracy
    for a, b in zip(before, trained.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert lab.sites.accuracy(trained.data.x_test, trained.data.y_test) == lab.float_accuracy


def test_the_widgets_recompute_on_every_change(trained):
    lab = trained.lab
    ui = show(lab)
    assert ui.controls["layer"].options == tuple(lab.layers)
    assert list(ui.controls["calibration"].options) == calibration_sizes(len(trained.data.x_train))
    first_text, first_image = ui.summary.value, bytes(ui.image.value)
    assert "accuracy" in first_text and first_image.startswith(b"\x89PNG")
    ui.controls["bits"].value = 2
    assert (
        ui.result.settings.bits == 2
        and ui.summary.value != first_text
        and bytes(ui.image.value) != first_image
    )
    assert f"accuracy {100 * ui.result.accuracy:.2f} %" in ui.summary.value
    ui.controls["layer"].value = lab.layers[-1]
    ui.controls["quantize"].value = "weights"
    assert ui.result.settings == Settings(layer=lab.layers[-1], bits=2, quantize="weights")
    assert ui.result.activations is None and len(histogram(ui.result).axes) == 1


def test_a_refused_setting_is_shown_not_raised(trained, monkeypatch):
    ui = show(trained.lab)
    monkeypatch.setattr(
        trained.lab, "compute", lambda s: (_ for _ in ()).throw(ValueError("no grid for this"))
    )
    ui.controls["bits"].value = 5
    assert (
        ui.result is None
        and "nothing computed" in ui.summary.value
        and "no grid for this" in ui.summary.value
    )


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"bits": 1}, "bits must be an integer from 2 to 16, got 1"),
        ({"bits": 17}, "bits must be an integer from 2 to 16"),
        ({"bits": 4.0}, "bits must be an integer"),
        ({"clip": 0.0}, "clip must be"),
        ({"clip": 1.5}, "clip must be"),
        ({"calibration": 0}, "calibration must be a whole number"),
        ({"symmetric": "yes"}, "symmetric must be True or False"),
        ({"quantize": "everything"}, "quantize must be one of " + ", ".join(QUANTIZE)),
    ],
)
def test_bad_settings_name_the_problem(bad, words):
    with pytest.raises(ValueError, match=words):
        Settings(layer="anything", **bad)


def test_unknown_layer_and_too_many_images_are_refused_by_the_explorer(trained):
    lab = trained.lab
    with pytest.raises(
        ValueError,
        match=r"unknown layer 'conv9'.*with weights to quantize are " + ", ".join(lab.layers),
    ):
        lab.compute(Settings(layer="conv9"))
    with pytest.raises(ValueError, match="calibration=5000 images, but the training split holds"):
        lab.compute(Settings(layer=lab.layers[0], calibration=5000))
    with pytest.raises(TypeError, match="pass a qlab_workshop.explorer.Settings"):
        lab.compute({"layer": lab.layers[0]})


@pytest.mark.parametrize("name", ["resnet_mini", "inception_mini", "lstm_rows", "wine_mlp"])
def test_any_zoo_architecture_untrained(name):
    """Residual adds, parallel branches, an LSTM's two kernels, an MLP: the layers and sites come
    from the model, every layer computes, and a weights-only result equals qlab's grid on each
    kernel."""
    dataset = data.load(models.get(name).dataset)
    model = models.build(name, dataset)
    lab = Explorer(model, dataset)
    assert lab.layers and set(lab.layers) <= {each.name for each in model.layers}
    for layer in lab.layers:
        result = lab.compute(
            Settings(layer=layer, bits=4, calibration=min(10, len(dataset.x_train)))
        )
        assert 0 <= result.accuracy <= 1 and result.activations is not None
        for part in result.weights:
            assert part.split == rounding.split(part.values, part.grid)
    if name == "lstm_rows":
        assert [p.name for p in lab.compute(Settings(layer="lstm")).weights] == [
            "kernel",
            "recurrent_kernel",
        ]


def test_sequential_and_nested_models():
    import tf_keras as keras

    dataset = data.load()
    inner = keras.Sequential([keras.layers.Dense(8, name="inner_dense")], name="inner")
    model = keras.Sequential(
        [
            keras.Input(dataset.sample_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(16, name="hidden"),
            keras.layers.ReLU(name="hidden_relu"),
            inner,
            keras.layers.Dense(10, name="out"),
        ]
    )
    lab = Explorer(model, dataset)
    assert lab.layers == ["hidden", "out"]  # a nested model's layers are not offered
    assert lab.sites.layers["hidden"] == "hidden_relu"
    assert (
        lab.compute(Settings(layer="hidden", bits=2)).activations.values.min() >= 0
    )  # after the ReLU


def test_models_the_explorer_cannot_take_are_refused():
    dataset = data.load()
    with pytest.raises(ValueError, match="wrapped for QAT"):
        Explorer(qat.quantize_aware(models.build("digits_cnn", dataset)), dataset)
    with pytest.raises(ValueError, match="takes samples of shape"):
        Explorer(models.build("wine_mlp", data.load("wine")), dataset)
    import tf_keras as keras

    no_kernel = keras.Sequential(
        [keras.Input(dataset.sample_shape), keras.layers.Flatten(), keras.layers.Softmax()]
    )
    with pytest.raises(ValueError, match="no layer with a kernel"):
        Explorer(no_kernel, dataset)


def test_combined_split_of_one_tensor_is_its_own(trained):
    result = trained.lab.compute(Settings(layer=trained.lab.layers[0], bits=4))
    combined = compute.combined(result.weights)
    for key, value in combined.items():  # (size · v) / size: two float64 roundings of v
        assert value == pytest.approx(result.weights[0].split[key], rel=gamma(2, U64), abs=0)
