"""Model builders. The article's digits CNN first; later models go beside it.

Every model qlab builds, and every QAT wrapping of one, is built inside `fresh_names()`, so the
names Keras gives its layers (and the converter its tensors) do not depend on what the process
built before: the same configuration gives the same `.tflite` bytes in any process.
"""

from __future__ import annotations

import collections
import contextlib

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
import tf_keras as keras
from tf_keras.src import backend as keras_backend

from qlab.data import IMAGE_SHAPE, NUM_CLASSES

DIGITS_CNN_PARAMS = 32_810  # what the article's model.summary() prints


@contextlib.contextmanager
def fresh_names():
    """Keras' automatic names start from scratch inside the block, and resume afterwards.

    Keras numbers unnamed layers with process-wide counters (`quantize_layer`, then
    `quantize_layer_1`, ...), and the converter copies layer names into tensor names, so a
    model built after others would convert to different bytes. Inside the block the counters
    are empty; on leaving, the counters and names seen outside it are restored, so models the
    caller builds later are named as if the block had not run.

    Source: tf_keras/src/backend.py, `get_uid` and `unique_object_name` read
    PER_GRAPH_OBJECT_NAME_UIDS and OBSERVED_NAMES; `reset_uids` clears both.
    """
    saved_uids = {graph: dict(uids) for graph, uids in keras_backend.PER_GRAPH_OBJECT_NAME_UIDS.items()}
    saved_names = set(keras_backend.OBSERVED_NAMES)
    keras_backend.reset_uids()
    try:
        yield
    finally:
        keras_backend.reset_uids()
        for graph, uids in saved_uids.items():
            keras_backend.PER_GRAPH_OBJECT_NAME_UIDS.setdefault(graph, collections.defaultdict(int)).update(uids)
        keras_backend.OBSERVED_NAMES.update(saved_names)


def digits_cnn() -> keras.Model:
    """The article's CNN: three 3x3 convs (64, 32, 32), Dense(32), Dense(10, softmax).

    Returns:
        an untrained tf_keras functional model, input (None, 8, 8, 1) float32 pixels, output
        (None, 10) probabilities; 32,810 parameters. Layer names (conv1, conv2, conv3, flatten,
        dense, probs) are fixed so that tables can refer to them.
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
    """Build a model by name (see BUILDERS), with fresh Keras names.

    Returns:
        the untrained tf_keras model.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(BUILDERS)}")
    with fresh_names():
        return BUILDERS[name]()
