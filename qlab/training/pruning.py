"""Magnitude pruning with tensorflow-model-optimization, and quantization-aware training after it.

tfmot prunes kernels only: biases, BatchNorm and DepthwiseConv2D weights stay whole
(`prune_registry.py`). Pruning-preserving QAT (PQAT, `Default8BitPrunePreserveQuantizeScheme`)
multiplies each kernel by a mask of its nonzeros, taken at wrapping, before its fake-quant op.
The model passed in is never changed (tfmot's wrappers write into the layers they wrap: qlab wraps
a copy); every call is seeded and builds inside `qlab.training.models.fresh_names`.
"""

from __future__ import annotations

import math
import numbers
from copy import copy as shallow_copy

import numpy as np
import tf_keras as keras

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
from qlab.training import fit, models, qat
from qlab.training.data import Dataset

EPOCHS = 8
RAMP_EPOCHS = 4
LEARNING_RATE = 2e-3
"""`prune`'s fine-tuning: sparsity rises from 0 to the target over `RAMP_EPOCHS`, holds to
`EPOCHS`; Adam at `LEARNING_RATE`. On digits_cnn at 90 %, seeds 0-2, these kept 93.6-94.9 % Keras
accuracy (float models: 96.7-97.8 %); 6 epochs at 1e-3 with a 3-epoch ramp kept 69-80 %."""
FREQUENCY = 10
"""Steps between two mask updates (tfmot's default, 100, is more than two epochs of the digits)."""
QAT_EPOCHS = 3
QAT_LEARNING_RATE = 3e-4
"""QAT fine-tuning after pruning or clustering: `qlab.training.fit.TrainConfig`'s QAT defaults."""
MIN_SPARSITY = 0.05
"""Share of exact zeros some kernel needs for a model to count as pruned."""


def check_sparsity(sparsity) -> float:
    """Returns the sparsity as a float if tfmot takes it: a fraction of zero weights in [0, 1).

    Source: `PruningSchedule._validate_sparsity` in tfmot's `pruning_schedule.py`.
    Raises ValueError for anything else (e.g. 50 meaning 50 %).
    """
    real = isinstance(sparsity, numbers.Real) and not isinstance(sparsity, bool)
    if not real or not 0 <= sparsity < 1:
        hint = (
            ""
            if not real or math.isnan(sparsity)
            else "; it must be 0 or more"
            if sparsity < 0
            else "; 1 would remove every weight"
            if sparsity == 1
            else f"; for {sparsity} %, pass {sparsity / 100:g}"
            if sparsity < 100
            else ""
        )
        raise ValueError(
            f"sparsity is the fraction of weights set to zero, in [0, 1): got {sparsity!r}{hint}"
        )
    return float(sparsity)


def kernels(model) -> dict[str, np.ndarray]:
    """Returns {layer name: float32 kernel, output channels last} of every layer with a kernel
    (Conv, Dense), wrappers and nested models opened, under the wrapped layer's own name: for QAT,
    the float weights before fake-quant; under a clustering wrapper, the weights before clustering.
    """
    found = {}
    for layer in models.leaf_layers(model):
        inner = getattr(layer, "layer", layer)
        # a QAT wrapper puts a fake-quant tensor there, and holds the variable itself
        if hasattr(inner, "kernel"):
            variables = [
                w for w in layer.weights if w.name.split(":")[0].rsplit("/", 1)[-1] == "kernel"
            ]
            if variables:
                found[inner.name] = np.array(variables[0].numpy(), dtype=np.float32)
    return found


def kernel_sparsity(model) -> dict[str, float]:
    """Returns {layer name: fraction of exact zeros in its kernel}."""
    return {name: float(np.mean(kernel == 0)) for name, kernel in kernels(model).items()}


def refuse_layers(model, supports, what: str) -> None:
    """Refuses, by name, the layers the predicate `supports` rejects, and recurrent layers.

    Raises TypeError if not tf_keras; ValueError naming each refused layer, with what to do.
    """
    qat.check_keras2(model)
    recurrent = models.recurrent_layers(model)
    if recurrent:
        raise ValueError(
            f"qlab's {what} refuses the recurrent layer {', '.join(map(repr, recurrent))} "
            f"of model {model.name!r}: "
            "it prepares a model for quantization-aware training, "
            "which tfmot 0.8.1 cannot apply to an LSTM "
            "(qlab.training.qat). Quantize a recurrent model after training instead "
            "(python -m qlab study recurrent)"
        )
    refused = [
        f"{layer.name!r} ({type(layer).__name__})"
        for layer in models.leaf_layers(model)
        if not supports(layer)
    ]
    if refused:
        raise ValueError(
            f"tfmot's {what} does not support layer {', '.join(refused)} of model {model.name!r}; "
            f"replace it with a built-in Keras layer, "
            f"or apply {what} to the other layers with tfmot"
        )


def check_prunable(model) -> None:
    """Refuses layers outside tfmot's `prune_registry.py` and recurrent ones; raises as
    `refuse_layers`."""
    from tensorflow_model_optimization.python.core.sparsity.keras import (
        prunable_layer,
        prune_registry,
    )

    refuse_layers(
        model,
        lambda layer: (
            prune_registry.PruneRegistry.supports(layer)
            or isinstance(layer, prunable_layer.PrunableLayer)
        ),
        "pruning",
    )


def copy(model):
    """Returns a copy of `model`, fresh names and the same weights, for tfmot to wrap."""
    with models.fresh_names():
        clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def fine_tune(
    model,
    data: Dataset,
    epochs: int,
    learning_rate: float,
    loss,
    batch_size: int = 32,
    callbacks=(),
) -> None:
    """Compiles (Adam, `loss`) and trains in place on the training split, silently; seed first.
    `loss` is `loss_for` the unwrapped model (a wrapper hides the output activation)."""
    fit.compile_model(model, learning_rate, loss)
    if epochs:
        model.fit(
            data.x_train,
            data.y_train,
            batch_size=batch_size,
            epochs=epochs,
            verbose=0,
            shuffle=True,
            callbacks=list(callbacks),
        )


def prune(
    model,
    data: Dataset,
    sparsity: float,
    epochs: int = EPOCHS,
    ramp_epochs: int = RAMP_EPOCHS,
    learning_rate: float = LEARNING_RATE,
    batch_size: int = 32,
    seed: int = 0,
):
    """Prunes a trained float model to `sparsity` by magnitude (`PolynomialDecay` from 0 over
    `ramp_epochs`, power 3), fine-tuning for `epochs`, then strips the wrappers.

    Returns a new plain tf_keras model with `round(sparsity × size)` of every Conv and Dense kernel
    exactly zero. Raises ValueError for a sparsity outside [0, 1), ramp_epochs outside 1..epochs,
    or layers tfmot cannot prune; TypeError if not tf_keras.
    """
    import tensorflow_model_optimization as tfmot

    sparsity = check_sparsity(sparsity)
    if not 1 <= ramp_epochs <= epochs:
        raise ValueError(f"ramp_epochs must be between 1 and epochs ({epochs}), got {ramp_epochs}")
    check_prunable(model)
    steps = math.ceil(len(data.x_train) / batch_size) * ramp_epochs
    # a mask update falls on the last step of the ramp
    end = max(FREQUENCY, steps // FREQUENCY * FREQUENCY)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        0.0, sparsity, begin_step=0, end_step=end, frequency=FREQUENCY
    )
    loss = fit.loss_for(model)
    fit.seed_everything(seed)
    plain = copy(model)
    with models.fresh_names():
        wrapped = tfmot.sparsity.keras.prune_low_magnitude(plain, pruning_schedule=schedule)
    fine_tune(
        wrapped,
        data,
        epochs,
        learning_rate,
        loss,
        batch_size,
        [tfmot.sparsity.keras.UpdatePruningStep()],
    )
    with models.fresh_names():
        return tfmot.sparsity.keras.strip_pruning(wrapped)


def check_pruned(model) -> None:
    """Raises ValueError, with each kernel's share of zeros, if no kernel has `MIN_SPARSITY`."""
    found = kernel_sparsity(model)
    if not found or max(found.values()) < MIN_SPARSITY:
        shares = (
            ", ".join(f"{name} {100 * s:.1f} %" for name, s in found.items())
            or "no Conv or Dense kernel"
        )
        raise ValueError(
            "pruning-preserving QAT keeps the zeros of a pruned model, "
            f"and model {model.name!r} has none worth the "
            f"name (zeros per kernel: {shares}; at least {100 * MIN_SPARSITY:.0f} % "
            "in some kernel counts as pruned). "
            f"{'Prune it further' if any(found.values()) else 'Prune it first'} "
            "with qlab.training.pruning.prune(model, data, "
            f"sparsity), a sparsity of {MIN_SPARSITY:g} or more, "
            "or use plain QAT (preserve_sparsity=False)"
        )


class ConcatInputsKept:
    """A tfmot quantize scheme whose layers feeding a Concatenate keep its own weight quantizers.
    tfmot's `ConcatTransform` (default_8bit_transforms.py) gives them the default 8-bit registry's
    config, so a preserving scheme silently did not preserve them (inception_mini: PQAT left
    15-17 % zeros of 50 %)."""

    def __init__(self, scheme):
        self.scheme = scheme

    def get_quantize_registry(self):
        """Returns the scheme's registry."""
        return self.scheme.get_quantize_registry()

    def get_layout_transformer(self):
        """Returns this object, whose `apply` mends the scheme's transforms."""
        return self

    def apply(self, model, layer_quantize_map):
        """The scheme's layout transforms, then its own config (output quantizer off) for every
        layer feeding a Concatenate. Returns (the model, the layer quantize map)."""
        model, layer_quantize_map = self.scheme.get_layout_transformer().apply(
            model, layer_quantize_map
        )
        registry = self.scheme.get_quantize_registry()
        inbound = [
            node.inbound_layers
            for layer in model.layers
            if type(layer).__name__ == "Concatenate"
            for node in layer.inbound_nodes
        ]
        for feeder in [
            f for layers in inbound for f in (layers if isinstance(layers, list) else [layers])
        ]:
            entry = layer_quantize_map.get(feeder.name) or {}
            if entry.get("quantize_config") is not None and registry.supports(feeder):
                config = shallow_copy(registry.get_quantize_config(feeder))
                config.quantize_output = False
                config.get_output_quantizers = lambda _: []
                entry["quantize_config"] = config
        return model, layer_quantize_map


def with_scheme(model, scheme):
    """Returns a new QAT tf_keras model wrapped with `scheme` (via `ConcatInputsKept`).

    Raises TypeError if not tf_keras; ValueError naming layers QAT cannot wrap, or with the
    scheme's own refusal.
    """
    import tensorflow_model_optimization as tfmot

    qat.check_keras2(model)
    refused = qat.unsupported(model) + [repr(name) for name in models.recurrent_layers(model)]
    if refused:
        raise ValueError(
            f"tfmot's QAT cannot wrap {', '.join(refused)} of model {model.name!r}; "
            f"use {qat.QAT_SELECTED}, or keep the model float and quantize after training"
        )
    qk = tfmot.quantization.keras
    try:
        with models.fresh_names():
            return qk.quantize_apply(qk.quantize_annotate_model(model), ConcatInputsKept(scheme))
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"{type(scheme).__name__} cannot wrap model {model.name!r}: {exc}"
        ) from exc


def quantize_aware(
    model,
    data: Dataset,
    preserve_sparsity: bool = False,
    epochs: int = QAT_EPOCHS,
    learning_rate: float = QAT_LEARNING_RATE,
    batch_size: int = 32,
    seed: int = 0,
):
    """Quantization-aware fine-tuning of a (pruned) model: plain QAT (zeros free to move), or
    with `preserve_sparsity` PQAT (zeros kept).

    Returns the trained QAT tf_keras model. Raises ValueError for PQAT of a model never pruned or
    layers QAT cannot wrap; TypeError if not tf_keras.
    """
    import tensorflow_model_optimization as tfmot

    qat.check_keras2(model)
    if preserve_sparsity:
        check_pruned(model)
    loss = fit.loss_for(model)
    fit.seed_everything(seed)
    wrapped = (
        with_scheme(model, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
        if preserve_sparsity
        else qat.quantize_aware(model)
    )
    fine_tune(wrapped, data, epochs, learning_rate, loss, batch_size)
    return wrapped
