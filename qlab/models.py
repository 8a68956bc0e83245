"""Model builders. The article's digits CNN first; later models go beside it."""

from __future__ import annotations

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
import tf_keras as keras

from qlab.data import IMAGE_SHAPE, NUM_CLASSES

DIGITS_CNN_PARAMS = 32_810  # what the article's model.summary() prints


def digits_cnn() -> keras.Model:
    """The article's CNN: three 3x3 convs (64, 32, 32), Dense(32), Dense(10, softmax).

    Layer names are stable so that analysis and tables can refer to them.
    """
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = keras.layers.Conv2D(64, (3, 3), activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(32, (3, 3), activation="relu", name="conv2")(x)
    x = keras.layers.Conv2D(32, (3, 3), activation="relu", name="conv3")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


BUILDERS = {"digits_cnn": digits_cnn}


def build(name: str = "digits_cnn") -> keras.Model:
    """Build a model by name (see BUILDERS)."""
    try:
        return BUILDERS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(BUILDERS)}") from None
