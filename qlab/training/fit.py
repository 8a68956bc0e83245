"""Training: the `float` baseline and quantization-aware training (`qat`).

QAT comes in the three forms the articles describe: the whole model, selected layers only, and a
delayed start (N steps in float, then fake-quant on: the TF1 API's `quant_delay`, which tfmot 2.x
lacks). A zoo model trains from a `TrainConfig`; your own with `train_model`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, replace

import numpy as np
import tensorflow as tf
import tf_keras as keras

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
from qlab.infra import progress
from qlab.training import data as datasets
from qlab.training import models
from qlab.training.data import Dataset
from qlab.training.qat import (  # noqa: F401  (train's QAT API)
    check_keras2,
    float_copy,
    quantize_aware,
)
from qlab.vocabulary import TRAININGS


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its hash keys the cache.

    Raises ValueError for an unknown training or model, a seed outside 0..2**32 - 1, epochs or
    batch size below 1, QAT epochs or quant_delay below 0, or a learning rate not positive.
    """

    training: str = "float"  # "float" or "qat"
    model: str = "digits_cnn"  # a zoo model (qlab.training.models.ZOO)
    seed: int = 0
    epochs: int | None = None  # float epochs; None: the model's own (digits_cnn: the article's 10)
    batch_size: int = 32
    learning_rate: float | None = None  # Adam's; None: the model's own (digits_cnn: 1e-3)
    dataset: str | None = None  # a built-in data set (qlab.training.data); None: the model's own
    qat_epochs: int = 3  # QAT fine-tuning epochs on top of the float model
    qat_learning_rate: float = 3e-4
    qat_layers: tuple[str, ...] | None = None  # None: the whole model
    quant_delay: int | None = None  # steps of float training before fake-quant switches on

    def key(self) -> dict:
        """Returns {field: value} of the fields that matter (float ignores the QAT ones)."""
        fields = asdict(self)
        if self.training == "float":
            fields = {
                k: v for k, v in fields.items() if not k.startswith("qat") and k != "quant_delay"
            }
        return fields

    def __post_init__(self):
        if self.training not in TRAININGS:
            raise ValueError(f"unknown training {self.training!r}; valid: {', '.join(TRAININGS)}")
        zoo = models.get(self.model)  # an unknown model: ValueError listing the zoo
        for name, default in (
            ("epochs", zoo.epochs),
            ("learning_rate", zoo.learning_rate),
            ("dataset", zoo.dataset),
        ):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)  # frozen: resolve the model's own once
        whole = {
            "seed": (self.seed, 0),
            "epochs": (self.epochs, 1),
            "batch_size": (self.batch_size, 1),
            "qat_epochs": (self.qat_epochs, 0),
        }
        if self.quant_delay is not None:
            whole["quant_delay"] = (self.quant_delay, 0)
        for name, (value, low) in whole.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be a whole number of {low} or more, got {value!r}")
        if self.seed >= 2**32:
            raise ValueError(f"seed must be below 2**32, got {self.seed}")
        if not (self.qat_learning_rate > 0 and self.learning_rate > 0):
            raise ValueError(
                f"learning rates must be positive, got {self.learning_rate!r} and "
                f"{self.qat_learning_rate!r}"
            )


def seed_everything(seed: int) -> None:
    """Same seed, same weights: seed Python, NumPy and TF, and make TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def thread_key() -> dict:
    """Returns {} with TensorFlow's default thread pool, else {"intra_op_threads": n}: a model
    trained on one thread differs in its last bits, so the two are cached apart."""
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    return {"intra_op_threads": threads} if threads else {}


class _EpochBar(keras.callbacks.Callback):
    """A progress bar over epochs, with the last epoch's loss and accuracies."""

    def __init__(self, label: str):
        super().__init__()
        self.label, self.bar = label, None

    def on_train_begin(self, logs=None):
        self.bar = progress.bar(desc=self.label, total=self.params.get("epochs"), unit="epoch")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix(
            loss=f"{logs.get('loss', float('nan')):.4f}",
            train=f"{logs.get('accuracy', float('nan')):.4f}",
            test=f"{logs.get('val_accuracy', float('nan')):.4f}",
            refresh=False,
        )
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


class _StopAfterSteps(keras.callbacks.Callback):
    """Stop training after exactly `steps` batches."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps, self.seen = steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen >= self.steps:
            self.model.stop_training = True


def compile_model(model, learning_rate: float = 1e-3, loss=None) -> None:
    """Compiles `model` in place: Adam, accuracy, and `loss` (default: `loss_for(model)`)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss or loss_for(model),
        metrics=["accuracy"],
    )


def loss_for(model):
    """Returns the Keras loss `model` was compiled with, else sparse categorical cross-entropy on
    probabilities if the output layer ends in softmax, on logits otherwise."""
    if getattr(model, "loss", None):
        return model.loss
    layer = model.outputs[0]._keras_history.layer  # the layer that computes the output
    while isinstance(layer, keras.Model):  # an output computed inside a nested model
        layer = layer.outputs[0]._keras_history.layer
    while isinstance(layer, keras.layers.Wrapper):  # tfmot's QAT and pruning wrappers, ...
        layer = layer.layer
    activation = getattr(layer, "activation", None)
    activation = getattr(activation, "activation", activation)  # tfmot's QuantizeAwareActivation
    activation = getattr(activation, "__name__", "")
    probabilities = activation.startswith("softmax") or isinstance(layer, keras.layers.Softmax)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)


def loss_key(loss) -> str:
    """Returns a Keras loss (a name, function or `Loss`) as the text of its config."""
    loss = keras.losses.get(loss)
    if not isinstance(loss, keras.losses.Loss):  # a function: its name says what it computes
        return getattr(loss, "__name__", repr(loss))
    return repr(keras.losses.serialize(loss))


def fit(
    model,
    data: Dataset,
    epochs: int,
    batch_size: int,
    label: str,
    show: bool = True,
    steps: int | None = None,
):
    """`model.fit` on the training split for `epochs` (or exactly `steps` batches), with test
    accuracy per epoch in `model.history` (it never steers training). Returns `model`."""
    callbacks = [_EpochBar(label)] if show and progress.enabled() else []
    if steps is not None:
        callbacks.append(_StopAfterSteps(steps))
        epochs = math.ceil(steps / math.ceil(len(data.x_train) / batch_size))
    if epochs > 0:
        model.fit(
            data.x_train,
            data.y_train,
            batch_size=batch_size,
            epochs=epochs,
            validation_data=(data.x_test, data.y_test),
            verbose=0,
            callbacks=callbacks,
            shuffle=True,
        )
    return model


def train_float(data: Dataset, config: TrainConfig = TrainConfig(), progress: bool = True):
    """Returns the float zoo model `config` names, trained from scratch, seeded."""
    seed_everything(config.seed)
    model = models.build(config.model, data)
    compile_model(model, config.learning_rate)
    return fit(model, data, config.epochs, config.batch_size, "float", progress)


def train_model(
    model,
    data: Dataset,
    epochs: int = 10,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
):
    """Trains your own model in place, seeded, with `loss_for(model)` and Adam. Returns it.

    Raises TypeError if not tf_keras; ValueError for several inputs or outputs, or data whose
    samples do not fit the input.
    """
    check_keras2(model, "training")
    _check_settings(epochs, learning_rate, batch_size)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"model {model.name!r} has {len(model.inputs)} input(s) and {len(model.outputs)} "
            f"output(s); qlab trains and scores models of one input and one output"
        )
    if tuple(model.input_shape[1:]) != data.sample_shape:
        raise ValueError(
            f"model {model.name!r} takes samples of shape {tuple(model.input_shape[1:])}, "
            f"the data set {data.name!r} has {data.sample_shape}"
        )
    _check_labels(model, data)
    seed_everything(seed)
    compile_model(model, learning_rate, loss_for(model))
    return fit(model, data, epochs, batch_size, model.name, progress)


def _check_settings(epochs, learning_rate, batch_size) -> None:
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    real = isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool)
    if not (real and math.isfinite(learning_rate)) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")


def _check_labels(model, data: Dataset) -> None:
    units = model.output_shape[-1]
    if units is None or units < 2:
        raise ValueError(
            f"model {model.name!r} has {units} output unit(s): qlab trains classifiers with one "
            "output unit per class (a binary head: Dense(2) with softmax or logits, labels 0/1)"
        )
    if data.num_classes > units:
        raise ValueError(
            f"the data set {data.name!r} has labels up to {data.num_classes - 1}, and model "
            f"{model.name!r} has {units} output units, one per class: give it {data.num_classes}"
        )


def train_qat(
    data: Dataset,
    float_model=None,
    config: TrainConfig = TrainConfig(training="qat"),
    progress: bool = True,
):
    """Quantization-aware training: with `quant_delay=None`, fine-tunes the trained `float_model`
    for `qat_epochs`; with `quant_delay=N`, N float steps from scratch, then fake-quant on for the
    rest of `epochs` worth of steps.

    Returns the trained QAT tf_keras model. Raises ValueError for fine-tuning without
    `float_model` or a quant_delay outside 0..total steps; TypeError if not tf_keras.
    """
    seed_everything(config.seed)
    if config.quant_delay is None:
        if float_model is None:
            raise ValueError("QAT fine-tuning needs the trained float model (float_model=...)")
        check_keras2(float_model)
        qat_model = quantize_aware(float_model, config.qat_layers)
        compile_model(qat_model, config.qat_learning_rate, loss_for(float_model))
        return fit(qat_model, data, config.qat_epochs, config.batch_size, "qat", progress)

    total_steps = config.epochs * math.ceil(len(data.x_train) / config.batch_size)
    if not 0 <= config.quant_delay <= total_steps:
        raise ValueError(
            f"quant_delay={config.quant_delay} must be between 0 and {total_steps} "
            f"(the steps in {config.epochs} epochs)"
        )
    model = models.build(config.model, data)
    compile_model(model, config.learning_rate)
    if config.quant_delay:
        fit(
            model,
            data,
            0,
            config.batch_size,
            "float (before quant_delay)",
            progress,
            steps=config.quant_delay,
        )
    qat_model = quantize_aware(model, config.qat_layers)
    compile_model(qat_model, config.learning_rate, loss_for(model))
    remaining = total_steps - config.quant_delay
    if remaining:
        fit(
            qat_model,
            data,
            0,
            config.batch_size,
            "qat (after quant_delay)",
            progress,
            steps=remaining,
        )
    return qat_model


def keras_accuracy(model, data: Dataset) -> float:
    """Returns a Keras model's test accuracy in [0, 1]."""
    probs = model(data.x_test, training=False).numpy()  # no predict(): it retraces per model
    return float(np.mean(np.argmax(probs, axis=1) == data.y_test))


def architecture(config: TrainConfig):
    """Returns the untrained tf_keras model `config` describes (QAT: wrapped), named alike."""
    model = models.build(config.model, datasets.load(config.dataset))
    return model if config.training == "float" else quantize_aware(model, config.qat_layers)


def float_config(config: TrainConfig) -> TrainConfig:
    """Returns the config of the float model a QAT config fine-tunes."""
    return replace(config, training="float")
