"""A model is saved once for all its conversions, and the files are byte for byte those of
TensorFlow's own `from_keras_model`."""

import numpy as np
import pytest
import tf_keras as keras

from qlab import artifacts
from qlab.conversion import modes, saved_model, to_tflite
from qlab.tflite.runtime import Runtime
from qlab.training import models
from qlab.training.fit import TrainConfig


def tensorflows_own(model, names, calibration):
    before = saved_model.counts()
    with saved_model.turned_off():
        files = {name: to_tflite.quantize(model, name, calibration) for name in names}
    assert saved_model.counts() == before  # TensorFlow's route: nothing saved or reused by qlab
    return files


@pytest.mark.parametrize("training", ["float", "qat"])
def test_every_mode_gives_the_bytes_of_tensorflows_own_converter(training, calibration):
    model = artifacts.trained(TrainConfig(training=training), progress=False)
    names = [m.name for m in modes.MODES.values() if m.qat or training == "float"]
    theirs = tensorflows_own(model, names, calibration)
    saved_model.clear()
    before = saved_model.counts()
    ours = {name: to_tflite.quantize(model, name, calibration) for name in names}
    after = saved_model.counts()
    assert (
        after["saved"] - before["saved"] == 1
        and after["reused"] - before["reused"] == len(names) - 1
    )
    for name in names:
        assert ours[name] == theirs[name], name


def test_another_object_with_the_same_state_reuses_and_new_weights_save_again(calibration):
    config = TrainConfig()
    first = artifacts.trained(config, progress=False)
    to_tflite.quantize(first, "full_integer", calibration)
    second = artifacts.trained(
        config, progress=False
    )  # loaded again from the cache: another object
    assert second is not first and saved_model.state_key(second) == saved_model.state_key(first)
    before = saved_model.counts()["reused"]
    to_tflite.quantize(second, "full_integer", calibration)
    assert saved_model.counts()["reused"] == before + 1
    weights = second.get_weights()
    weights[0] = weights[0] * 0.5
    second.set_weights(weights)
    assert saved_model.state_key(second) != saved_model.state_key(first)
    saved = saved_model.counts()["saved"]
    ours = to_tflite.quantize(second, "full_integer", calibration)
    assert saved_model.counts()["saved"] == saved + 1
    assert ours == tensorflows_own(second, ["full_integer"], calibration)["full_integer"]


FACTOR = {"value": 2.0}


def lambda_model():
    with models.fresh_names():
        inputs = keras.Input((4,))
        x = keras.layers.Lambda(lambda t: t * FACTOR["value"])(inputs)  # reads a global when traced
        return keras.Model(inputs, keras.layers.Dense(2, kernel_initializer="ones")(x))


# The models below compute with small whole numbers (inputs and weights 1, factors 2 and 3, zero
# biases): every product and sum is exact in float32, in any order, so outputs compare exactly.


def test_a_lambda_model_is_recognised_only_as_the_same_object():
    """Two Lambda models alike in config, classes and weights, whose Lambda reads a global that
    changed between them: the second is saved again, and converts to what it computes."""
    x = np.ones((1, 4), np.float32)
    twice = lambda_model()
    np.testing.assert_array_equal(
        Runtime(to_tflite.quantize(twice, "float32")).predict(x), [[8.0, 8.0]]
    )
    FACTOR["value"] = 3.0
    try:
        thrice = lambda_model()
        assert thrice.get_config() == twice.get_config()
        assert saved_model.state_key(thrice) != saved_model.state_key(twice)
        np.testing.assert_array_equal(
            Runtime(to_tflite.quantize(thrice, "float32")).predict(x), [[12.0, 12.0]]
        )
    finally:
        FACTOR["value"] = 2.0


def test_an_activation_redefined_under_the_same_name_is_saved_again():
    """A notebook cell defines an activation, a model uses it; the cell is edited and run again."""
    x = np.ones((1, 4), np.float32)

    def build(activation):
        with models.fresh_names():
            inputs = keras.Input((4,))
            return keras.Model(
                inputs,
                keras.layers.Dense(2, activation=activation, kernel_initializer="ones")(inputs),
            )

    def act(t):
        return t * 2.0

    first = build(act)
    np.testing.assert_array_equal(
        Runtime(to_tflite.quantize(first, "float32")).predict(x), [[8.0, 8.0]]
    )

    def act(t):  # noqa: F811  (redefined, as a re-run cell would)
        return t * 3.0

    second = build(act)
    assert second.get_config() == first.get_config()
    np.testing.assert_array_equal(
        Runtime(to_tflite.quantize(second, "float32")).predict(x), [[12.0, 12.0]]
    )


def test_an_activation_under_tf_function_is_the_users_own():
    import tensorflow as tf

    def scaled(k):
        @tf.function
        def act(t):
            return t * k

        return act

    def build(k):
        with models.fresh_names():
            inputs = keras.Input((4,))
            return keras.Model(
                inputs,
                keras.layers.Dense(2, activation=scaled(k), kernel_initializer="ones")(inputs),
            )

    x = np.ones((1, 4), np.float32)
    assert not saved_model.fully_described(build(2.0))
    assert saved_model.fully_described(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation=tf.nn.relu6)])
    )
    np.testing.assert_array_equal(
        Runtime(to_tflite.quantize(build(2.0), "float32")).predict(x), [[8.0, 8.0]]
    )
    np.testing.assert_array_equal(
        Runtime(to_tflite.quantize(build(3.0), "float32")).predict(x), [[12.0, 12.0]]
    )


def test_at_most_keep_folders_are_held():
    saved_model.clear()
    for seed in range(saved_model.KEEP + 2):
        with models.fresh_names():
            inputs = keras.Input((3,))
            model = keras.Model(
                inputs,
                keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant(seed))(inputs),
            )
        to_tflite.quantize(model, "float32")
    assert saved_model.counts()["held"] == saved_model.KEEP
    saved_model.clear()
    assert saved_model.counts()["held"] == 0
