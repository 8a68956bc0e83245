"""Training: seeded and deterministic; QAT whole, selected layers, delayed start; Keras 3
refused."""

import subprocess
import sys

import numpy as np
import pytest

from qlab.training import fit, models


def test_same_seed_same_weights(digits):
    config = fit.TrainConfig(epochs=1, seed=11)
    a = fit.train_float(digits, config, progress=False)
    b = fit.train_float(digits, config, progress=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    c = fit.train_float(digits, fit.TrainConfig(epochs=1, seed=12), progress=False)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_float_baseline_learns(float_model, digits):
    assert fit.keras_accuracy(float_model, digits) > 0.95


def test_qat_wraps_every_layer_and_keeps_accuracy(qat_model, float_model, digits):
    wrapped = [
        layer.name
        for layer in qat_model.layers
        if type(layer).__name__.startswith("QuantizeWrapper")
    ]
    assert wrapped == [
        "quant_conv1",
        "quant_conv2",
        "quant_conv3",
        "quant_flatten",
        "quant_dense",
        "quant_probs",
    ]
    assert fit.keras_accuracy(qat_model, digits) >= fit.keras_accuracy(float_model, digits) - 0.01


def test_qat_selected_layers_only(tiny_model, digits):
    model = fit.quantize_aware(tiny_model, layers=("dense", "probs"))
    wrapped = [
        layer.name for layer in model.layers if type(layer).__name__.startswith("QuantizeWrapper")
    ]
    # tfmot also wraps the Flatten feeding an annotated layer (a pass-through for its ranges)
    assert "quant_dense" in wrapped and "quant_probs" in wrapped
    assert not any(name.startswith("quant_conv") for name in wrapped)
    # the float weights carry over into the wrapped layers
    np.testing.assert_array_equal(
        model.get_layer("conv1").get_weights()[0], tiny_model.get_layer("conv1").get_weights()[0]
    )
    with pytest.raises(ValueError, match="no layer named dense9.*conv1"):
        fit.quantize_aware(tiny_model, layers=("dense9",))


def test_quant_delay_trains_float_first_then_qat(digits):
    config = fit.TrainConfig(training="qat", epochs=1, quant_delay=30, seed=5)
    model = fit.train_qat(digits, None, config, progress=False)
    steps_per_epoch = int(np.ceil(len(digits.x_train) / config.batch_size))
    assert int(model.optimizer.iterations.numpy()) == steps_per_epoch - 30  # fake-quant phase
    assert fit.keras_accuracy(model, digits) > 0.5
    with pytest.raises(ValueError, match="quant_delay=999 must be between 0 and 43"):
        fit.train_qat(digits, None, fit.TrainConfig(training="qat", epochs=1, quant_delay=999))


def test_unknown_training():
    with pytest.raises(ValueError, match="valid: float, qat"):
        fit.TrainConfig(training="prune")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )


def test_keras3_loaded_before_qlab_is_explained():
    result = _run(
        "import tensorflow as tf; tf.keras.layers\n"
        "try:\n import qlab\nexcept ImportError as e: print('ERR', e)"
    )
    assert "ERR" in result.stdout and "TF_USE_LEGACY_KERAS=1" in result.stdout, result.stderr[
        -2000:
    ]


def test_qlab_first_makes_tf_keras_keras2():
    result = _run("import qlab, tensorflow as tf; print(tf.keras.__name__)")
    assert result.stdout.strip().startswith("tf_keras"), result.stderr[-2000:]


def test_keras3_model_handed_to_qat_is_explained():
    result = _run(
        "import qlab, keras\n"
        "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
        "from qlab.training import fit\n"
        "try:\n fit.quantize_aware(m)\nexcept TypeError as e: print('ERR', e)"
    )
    assert "ERR" in result.stdout and "tf_keras" in result.stdout and "Keras 3" in result.stdout, (
        result.stderr[-2000:]
    )


def test_the_loss_reads_the_activation_inside_a_qat_wrapper():
    import tf_keras as keras

    from qlab.training import qat

    for activation, from_logits in (("softmax", False), (None, True)):
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, activation=activation, name="head")]
        )
        wrapped = qat.quantize_aware(model)
        assert fit.loss_for(wrapped).get_config()["from_logits"] is from_logits


def test_a_seeded_zoo_model_starts_from_the_same_weights():
    first, second = (models.build("digits_cnn", seed=3).get_weights() for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    other = models.build("digits_cnn", seed=4).get_weights()
    assert not np.array_equal(first[0], other[0])
