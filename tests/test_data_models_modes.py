"""The data split, the article's model and the mode table."""

import numpy as np
import pytest

from qlab.conversion import modes
from qlab.training import data, models


def test_split_is_the_articles(digits):
    assert digits.x_train.shape == (1347, 8, 8, 1) and digits.x_test.shape == (450, 8, 8, 1)
    assert digits.y_train.shape == (1347,) and digits.y_test.shape == (450,)
    assert digits.x_train.dtype == np.float32
    assert digits.x_train.min() == 0 and digits.x_train.max() == 16  # raw pixels, unscaled
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    _, x_test, _, y_test = train_test_split(
        d["images"], d["target"], test_size=0.25, random_state=42
    )
    np.testing.assert_array_equal(digits.x_test[..., 0], x_test)
    np.testing.assert_array_equal(digits.y_test, y_test)


def test_data_is_read_only(digits):
    with pytest.raises(ValueError):
        digits.x_train[0, 0, 0, 0] = 1


def test_calibration_comes_from_training_split_and_is_seeded(digits):
    cal = data.calibration(digits.x_train, n=50, seed=3)
    assert cal.shape == (50, 8, 8, 1) and cal.dtype == np.float32
    train_rows = {row.tobytes() for row in digits.x_train}
    assert all(row.tobytes() in train_rows for row in cal)
    np.testing.assert_array_equal(cal, data.calibration(digits.x_train, n=50, seed=3))
    assert not np.array_equal(cal, data.calibration(digits.x_train, n=50, seed=4))


@pytest.mark.parametrize("n", [0, -1, 2000])
def test_calibration_size_out_of_range(digits, n):
    with pytest.raises(ValueError, match="calibration size"):
        data.calibration(digits.x_train, n=n)


def test_model_is_the_articles():
    model = models.build("digits_cnn")
    assert model.count_params() == models.DIGITS_CNN_PARAMS == 32_810
    summary = [
        (layer.__class__.__name__, layer.output_shape[1:], layer.count_params())
        for layer in model.layers[1:]
    ]
    assert summary == [
        ("Conv2D", (6, 6, 64), 640),
        ("Conv2D", (4, 4, 32), 18464),
        ("Conv2D", (2, 2, 32), 9248),
        ("Flatten", (128,), 0),
        ("Dense", (32,), 4128),
        ("Dense", (10,), 330),
    ]
    assert model.layers[-1].activation.__name__ == "softmax"


def test_unknown_model_lists_valid():
    with pytest.raises(ValueError, match="digits_cnn"):
        models.build("resnet")


def test_unknown_mode_lists_every_valid_mode():
    with pytest.raises(ValueError) as err:
        modes.get("int8_only")
    for name in (
        "float32",
        "dynamic_range",
        "float16",
        "full_integer",
        "integer_only",
        "integer_only_uint8",
        "int16x8",
    ):
        assert name in str(err.value)


def test_mode_rows_name_real_converter_settings():
    import tensorflow as tf

    for mode in modes.MODES.values():
        for ops in mode.supported_ops:
            assert hasattr(tf.lite.OpsSet, ops), (mode.name, ops)
        for t in mode.supported_types + (mode.io,):
            assert hasattr(tf, t), (mode.name, t)
        assert mode.needs_calibration == (mode.activations in ("int8", "int16"))


def test_qat_converts_in_the_integer_modes_only():
    assert [m.name for m in modes.for_training("qat")] == [
        "full_integer",
        "integer_only",
        "integer_only_uint8",
    ]
    assert len(modes.for_training("float")) == len(modes.MODES)
    with pytest.raises(ValueError, match="float, qat"):
        modes.for_training("pruned")
