"""Training: the `float` baseline and quantization-aware training (`qat`).

QAT comes in the three forms the articles describe: the whole model, selected layers
only (annotate + apply), and a delayed start (train N steps in float, then switch the
fake-quant ops on: the `quant_delay` of the TF1 API, which tfmot 2.x lacks).
Trained models are cached by `qlab.artifacts.trained`; this module trains.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
import tensorflow as tf
import tf_keras as keras

from qlab import models, progress
from qlab.data import Digits
from qlab.vocabulary import TRAININGS


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its hash keys the cache.

    Raises:
        ValueError: a training other than those of `qlab.vocabulary.TRAININGS`, an unknown model,
            a seed outside 0..2**32 - 1, epochs or batch size below 1, QAT epochs or a quant_delay
            below 0, or a learning rate that is not positive.
    """

    training: str = "float"  # "float" or "qat"
    model: str = "digits_cnn"
    seed: int = 0
    epochs: int = 10  # float epochs (the article: adam, batch 32, 10 epochs)
    batch_size: int = 32
    qat_epochs: int = 3  # QAT fine-tuning epochs on top of the float model
    qat_learning_rate: float = 3e-4
    qat_layers: tuple[str, ...] | None = None  # None: the whole model
    quant_delay: int | None = None  # steps of float training before fake-quant switches on

    def key(self) -> dict:
        """The fields that matter for this training (a float model ignores the QAT ones).

        Returns:
            a dict of field name to value, for cache keys.
        """
        fields = asdict(self)
        if self.training == "float":
            fields = {k: v for k, v in fields.items() if not k.startswith("qat") and k != "quant_delay"}
        return fields

    def __post_init__(self):
        if self.training not in TRAININGS:
            raise ValueError(f"unknown training {self.training!r}; valid: {', '.join(TRAININGS)}")
        if self.model not in models.BUILDERS:
            raise ValueError(f"unknown model {self.model!r}; valid models: {', '.join(models.BUILDERS)}")
        whole = {"seed": (self.seed, 0), "epochs": (self.epochs, 1), "batch_size": (self.batch_size, 1),
                 "qat_epochs": (self.qat_epochs, 0)}
        if self.quant_delay is not None:
            whole["quant_delay"] = (self.quant_delay, 0)
        for name, (value, low) in whole.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be a whole number of {low} or more, got {value!r}")
        if self.seed >= 2**32:
            raise ValueError(f"seed must be below 2**32, got {self.seed}")
        if not self.qat_learning_rate > 0:
            raise ValueError(f"qat_learning_rate must be positive, got {self.qat_learning_rate!r}")


def seed_everything(seed: int) -> None:
    """Same seed, same weights: seed Python, NumPy and TF, and make TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def check_keras2(model) -> None:
    """Refuse anything but a tf_keras (Keras 2) model, which is all tfmot can wrap.

    Raises:
        TypeError: a Keras 3 model or any other object, with how to build a Keras 2 one.
    """
    if not isinstance(model, keras.Model):
        kind = f"{type(model).__module__}.{type(model).__name__}"
        raise TypeError(
            f"quantization-aware training needs a tf_keras (Keras 2) model, got {kind}. "
            "tensorflow-model-optimization does not support Keras 3. Build the model with "
            "`import tf_keras as keras` (or qlab.models.build()), or import qlab before "
            "TensorFlow so that tf.keras is Keras 2."
        )


class _EpochBar(keras.callbacks.Callback):
    """A progress bar over epochs (qlab.progress), with the last epoch's loss and accuracies."""

    def __init__(self, label: str):
        super().__init__()
        self.label, self.bar = label, None

    def on_train_begin(self, logs=None):
        self.bar = progress.bar(desc=self.label, total=self.params.get("epochs"), unit="epoch")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}",
                             train=f"{logs.get('accuracy', float('nan')):.4f}",
                             test=f"{logs.get('val_accuracy', float('nan')):.4f}", refresh=False)
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


def compile_model(model, learning_rate: float = 1e-3) -> None:
    """Compile `model` in place as the article does: Adam at `learning_rate`, sparse categorical
    cross-entropy on probabilities (the last layer's softmax), accuracy as the metric."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def fit(model, data: Digits, epochs: int, batch_size: int, label: str, show: bool = True,
        steps: int | None = None):
    """`model.fit` on the training split, with test accuracy per epoch in `model.history`, as in
    the article's run (validation only reports, it never steers training).

    Args:
        epochs: epochs to train (ignored when `steps` is given).
        label: the progress bar's description.
        show: False hides the progress bar.
        steps: train exactly this many batches instead.

    Returns:
        `model`, trained in place.
    """
    callbacks = [_EpochBar(label)] if show and progress.enabled() else []
    if steps is not None:
        callbacks.append(_StopAfterSteps(steps))
        epochs = math.ceil(steps / math.ceil(len(data.x_train) / batch_size))
    if epochs > 0:
        model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs,
                  validation_data=(data.x_test, data.y_test), verbose=0, callbacks=callbacks,
                  shuffle=True)
    return model


def train_float(data: Digits, config: TrainConfig = TrainConfig(), progress: bool = True):
    """Train the float baseline from scratch, seeded.

    Returns:
        the trained tf_keras model; `model.history.history` holds loss and accuracy per epoch.
    """
    seed_everything(config.seed)
    model = models.build(config.model)
    compile_model(model)
    return fit(model, data, config.epochs, config.batch_size, "float", progress)


def quantize_aware(model, layers: tuple[str, ...] | None = None):
    """Wrap `model` for QAT (tfmot's default 8-bit scheme): every supported layer, or only the
    named ones (annotate + apply). Built with fresh Keras names (`qlab.models.fresh_names`).

    Returns:
        a new tf_keras model with fake-quant wrappers; `model` is left as it is.

    Raises:
        TypeError: `model` is not a tf_keras model.
        ValueError: a name in `layers` that the model does not have.
    """
    import tensorflow_model_optimization as tfmot  # TF's optional stack: loaded when QAT is asked for

    check_keras2(model)
    qk = tfmot.quantization.keras
    if layers is None:
        with models.fresh_names():
            return qk.quantize_model(model)
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(layers) - names)
    if unknown:
        raise ValueError(f"no layer named {', '.join(unknown)}; the model's layers: {', '.join(sorted(names))}")
    with models.fresh_names():
        annotated = keras.models.clone_model(
            model,
            clone_function=lambda layer: qk.quantize_annotate_layer(layer) if layer.name in layers else layer,
        )
        annotated.set_weights(model.get_weights())
        return qk.quantize_apply(annotated)


def train_qat(data: Digits, float_model=None, config: TrainConfig = TrainConfig(training="qat"),
              progress: bool = True):
    """Quantization-aware training.

    With `config.quant_delay=None`, fine-tune `float_model` (trained already) with fake-quant
    on for `config.qat_epochs`. With `quant_delay=N`, start from scratch: N steps in float,
    then fake-quant on for the rest of `config.epochs` worth of steps.

    Returns:
        the trained QAT (fake-quantized) tf_keras model.

    Raises:
        ValueError: fine-tuning without `float_model`, or a quant_delay outside 0..total steps.
        TypeError: `float_model` is not a tf_keras model.
    """
    seed_everything(config.seed)
    if config.quant_delay is None:
        if float_model is None:
            raise ValueError("QAT fine-tuning needs the trained float model (float_model=...)")
        check_keras2(float_model)
        qat_model = quantize_aware(float_model, config.qat_layers)
        compile_model(qat_model, config.qat_learning_rate)
        return fit(qat_model, data, config.qat_epochs, config.batch_size, "qat", progress)

    total_steps = config.epochs * math.ceil(len(data.x_train) / config.batch_size)
    if not 0 <= config.quant_delay <= total_steps:
        raise ValueError(f"quant_delay={config.quant_delay} must be between 0 and {total_steps} "
                         f"(the steps in {config.epochs} epochs)")
    model = models.build(config.model)
    compile_model(model)
    if config.quant_delay:
        fit(model, data, 0, config.batch_size, "float (before quant_delay)", progress, steps=config.quant_delay)
    qat_model = quantize_aware(model, config.qat_layers)
    compile_model(qat_model)
    remaining = total_steps - config.quant_delay
    if remaining:
        fit(qat_model, data, 0, config.batch_size, "qat (after quant_delay)", progress, steps=remaining)
    return qat_model


def keras_accuracy(model, data: Digits) -> float:
    """Test accuracy of a Keras model (float or fake-quantized).

    Returns:
        the fraction of `data.x_test` classified as `data.y_test`, in [0, 1].
    """
    probs = model(data.x_test, training=False).numpy()  # no predict(): it retraces per model
    return float(np.mean(np.argmax(probs, axis=1) == data.y_test))


def architecture(config: TrainConfig):
    """The untrained model `config` describes (QAT: wrapped for fake-quant).

    Returns:
        a tf_keras model with the layers and names a trained one of `config` has.
    """
    model = models.build(config.model)
    return model if config.training == "float" else quantize_aware(model, config.qat_layers)


def float_config(config: TrainConfig) -> TrainConfig:
    """The float model a QAT config fine-tunes.

    Returns:
        the same `TrainConfig` with training="float".
    """
    return replace(config, training="float")


def float_copy(qat_model, name: str = "digits_cnn"):
    """The plain float model holding a QAT model's float (shadow) weights, without fake-quant.

    Its float32 .tflite is the QAT model's *float twin*: what the network computes before any
    rounding, so that per-layer error can be measured for QAT models too.

    Args:
        qat_model: a QAT model whose plain architecture is `qlab.models.build(name)`.
        name: the model builder's name.

    Returns:
        a new tf_keras model of that architecture with the QAT model's kernels and biases.
    """
    plain = models.build(name)
    wrappers = {layer.name.removeprefix("quant_"): layer for layer in qat_model.layers}
    for layer in plain.layers:
        count = len(layer.weights)
        if count:
            shadow = [w for w in wrappers[layer.name].weights
                      if w.name.split("/")[-1].split(":")[0] in ("kernel", "bias")]
            layer.set_weights([w.numpy() for w in shadow[:count]])
    return plain
