"""Model builders: the article's digits CNN, and a small zoo of the families the articles report
(MobileNet, ResNet, Inception, LSTM), each trained in seconds on two cores.

Every builder takes the data's sample shape and class count, and returns an untrained tf_keras
functional model, (None,) + shape in, (None, classes) probabilities out. Every model and QAT
wrapping is built inside `fresh_names()`, so the same configuration gives the same `.tflite` bytes
in any process.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import tf_keras as keras
from tf_keras.src import backend as keras_backend

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
from qlab.tflite.naming import (  # noqa: F401  (part of this module's API)
    leaf_layers,
    recurrent_layers,
)
from qlab.training import data

L = keras.layers
DIGITS_CNN_PARAMS = 32_810  # what the article's model.summary() prints


@contextlib.contextmanager
def fresh_names():
    """A context manager (`with qlab.fresh_names(): ...`): Keras' automatic names (process-wide
    counters, copied into tensor names) start from scratch inside the block, so a model converts
    to the same bytes whatever was built before; on leaving, the counters are restored.

    Source: tf_keras/src/backend.py, `get_uid` and `unique_object_name` read
    PER_GRAPH_OBJECT_NAME_UIDS and OBSERVED_NAMES; `reset_uids` clears both.
    """
    saved_uids = {
        graph: dict(uids) for graph, uids in keras_backend.PER_GRAPH_OBJECT_NAME_UIDS.items()
    }
    saved_names = set(keras_backend.OBSERVED_NAMES)
    keras_backend.reset_uids()
    try:
        yield
    finally:
        keras_backend.reset_uids()
        for graph, uids in saved_uids.items():
            keras_backend.PER_GRAPH_OBJECT_NAME_UIDS.setdefault(
                graph, collections.defaultdict(int)
            ).update(uids)
        keras_backend.OBSERVED_NAMES.update(saved_names)


def digits_cnn(
    shape=data.IMAGE_SHAPE,
    classes: int = data.NUM_CLASSES,
    *,
    filters: tuple[int, int, int] = (64, 32, 32),
    units: int = 32,
) -> keras.Model:
    """The article's CNN: three 3x3 convs (`filters`), Dense(`units`), Dense(classes, softmax).

    Returns the model (32,810 parameters on the digits with the article's widths), layers named
    conv1, conv2, conv3, flatten, dense, probs. Raises ValueError for not three filter counts or a
    width below 1.
    """
    if len(filters) != 3 or min(*filters, units) < 1:
        raise ValueError(
            f"digits_cnn takes three filter counts and a width, each 1 or more; got "
            f"filters={tuple(filters)!r}, units={units!r}"
        )
    inputs = keras.Input(shape=shape, name="image")
    x = L.Conv2D(filters[0], (3, 3), activation="relu", name="conv1")(inputs)
    x = L.Conv2D(filters[1], (3, 3), activation="relu", name="conv2")(x)
    x = L.Conv2D(filters[2], (3, 3), activation="relu", name="conv3")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(units, activation="relu", name="dense")(x)
    outputs = L.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def _conv_bn(
    x,
    filters: int,
    kernel: int,
    name: str,
    strides: int = 1,
    relu: bool = True,
    max_value: float | None = None,
    depthwise: bool = False,
):
    """Conv (or depthwise conv) without bias, BatchNorm, then a ReLU (capped at `max_value`)."""
    if depthwise:
        x = L.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    else:
        x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)  # few steps: stats keep up
    return L.ReLU(max_value, name=f"{name}_relu")(x) if relu else x


def mobilenet_mini(shape=data.IMAGE_SHAPE, classes: int = data.NUM_CLASSES) -> keras.Model:
    """Returns MobileNet v1 in miniature: a 3x3 stem, two depthwise-separable blocks (BatchNorm,
    ReLU6; the second strides 2), global average pooling, Dense(classes, softmax)."""
    inputs = keras.Input(shape=shape, name="image")
    x = _conv_bn(inputs, 16, 3, "stem", max_value=6.0)
    for k, (filters, strides) in enumerate([(32, 1), (64, 2)]):
        x = _conv_bn(x, 0, 3, f"dw{k}", strides=strides, max_value=6.0, depthwise=True)
        x = _conv_bn(x, filters, 1, f"pw{k}", max_value=6.0)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="mobilenet_mini")


def resnet_mini(shape=data.IMAGE_SHAPE, classes: int = data.NUM_CLASSES) -> keras.Model:
    """Returns ResNet in miniature: a 3x3 stem, two residual blocks (conv-BN-ReLU-conv-BN, Add,
    ReLU), global average pooling, Dense(classes, softmax)."""
    inputs = keras.Input(shape=shape, name="image")
    x = _conv_bn(inputs, 24, 3, "stem")
    for k in range(2):
        y = _conv_bn(x, 24, 3, f"b{k}_conv1")
        y = _conv_bn(y, 24, 3, f"b{k}_conv2", relu=False)
        x = L.ReLU(name=f"b{k}_relu")(L.Add(name=f"b{k}_add")([x, y]))
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="resnet_mini")


def inception_mini(shape=data.IMAGE_SHAPE, classes: int = data.NUM_CLASSES) -> keras.Model:
    """Returns Inception in miniature: a 3x3 stem, one inception block (1x1; 1x1 then 3x3; 3x3
    max pooling then 1x1), 2x2 average pooling, Dense(classes, softmax)."""
    inputs = keras.Input(shape=shape, name="image")
    x = L.Conv2D(24, 3, padding="same", activation="relu", name="stem")(inputs)
    a = L.Conv2D(16, 1, activation="relu", name="branch1x1")(x)
    b = L.Conv2D(16, 1, activation="relu", name="branch3x3_reduce")(x)
    b = L.Conv2D(24, 3, padding="same", activation="relu", name="branch3x3")(b)
    c = L.MaxPooling2D(3, strides=1, padding="same", name="branch_pool")(x)
    c = L.Conv2D(16, 1, activation="relu", name="branch_pool_proj")(c)
    x = L.Concatenate(name="mixed")([a, b, c])
    x = L.AveragePooling2D(2, name="avg")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="inception_mini")


def lstm_rows(
    shape=(8, 8), classes: int = data.NUM_CLASSES, batch_size: int | None = None
) -> keras.Model:
    """Returns an LSTM(32) reading an image row by row, then Dense(classes, softmax); input
    (batch_size,) + (time steps, features). Convert with batch_size 1 (`with_batch_size`)."""
    inputs = keras.Input(shape=shape, batch_size=batch_size, name="rows")
    x = L.LSTM(32, name="lstm")(inputs)
    outputs = L.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="lstm_rows")


def wine_mlp(shape=(13,), classes: int = 3) -> keras.Model:
    """Returns an MLP for tables: Dense(32, relu), Dense(16, relu), Dense(classes, softmax)."""
    inputs = keras.Input(shape=shape, name="features")
    x = L.Dense(32, activation="relu", name="hidden1")(inputs)
    x = L.Dense(16, activation="relu", name="hidden2")(x)
    outputs = L.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="wine_mlp")


@dataclass(frozen=True)
class ZooModel:
    """A model of the zoo: its builder, the data set it trains on, and the published family it
    stands in for (a row of `qlab/published/tfmot-post-training-integer-quantization.csv`)."""

    name: str
    build: Callable[..., keras.Model]
    dataset: str
    epochs: int = 10  # enough for the model to pass 95 % test accuracy (median over seeds)
    learning_rate: float = 1e-3  # Adam's
    family: str | None = None


ZOO: dict[str, ZooModel] = {
    z.name: z
    for z in (
        ZooModel("digits_cnn", digits_cnn, "digits"),  # the article's: 10 epochs, Adam at 1e-3
        ZooModel(
            "mobilenet_mini",
            mobilenet_mini,
            "digits",
            learning_rate=3e-3,
            family="MobileNet v1 (1.0 224)",
        ),
        ZooModel("resnet_mini", resnet_mini, "digits", family="ResNet v2"),
        ZooModel("inception_mini", inception_mini, "digits", family="Inception v3"),
        ZooModel("lstm_rows", lstm_rows, "digits_rows", epochs=30, learning_rate=3e-3),
        ZooModel("wine_mlp", wine_mlp, "wine", epochs=60, learning_rate=3e-3),
    )
}
BUILDERS = {name: z.build for name, z in ZOO.items()}


def get(name: str) -> ZooModel:
    """Returns the `ZooModel` called `name`; raises ValueError listing the zoo for another."""
    if name not in ZOO:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(ZOO)}")
    return ZOO[name]


def build(
    name: str = "digits_cnn", dataset: data.Dataset | None = None, *, seed: int | None = None
) -> keras.Model:
    """Returns the untrained zoo model for `dataset` (default: its own), with fresh names, and
    with the same starting weights every time if `seed` is given (`keras.utils.set_random_seed`).

    Raises ValueError for an unknown name.
    """
    entry = get(name)
    dataset = dataset or data.load(entry.dataset)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    with fresh_names():
        return entry.build(dataset.sample_shape, dataset.num_classes)


def with_batch_size(model, batch_size: int = 1):
    """Returns a copy with the same layers and weights and its input fixed to `batch_size`: the
    converter lowers a Keras LSTM to UNIDIRECTIONAL_SEQUENCE_LSTM only for a fixed batch.

    Raises ValueError for a model with more than one input.
    """
    if len(model.inputs) != 1:
        raise ValueError(
            f"with_batch_size takes models with one input; {model.name!r} has {len(model.inputs)}"
        )
    with fresh_names():
        inputs = keras.Input(
            batch_shape=(batch_size, *model.input_shape[1:]), name=model.input_names[0]
        )
        clone = keras.models.clone_model(model, input_tensors=inputs)
    clone.set_weights(model.get_weights())
    return clone
