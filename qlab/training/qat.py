"""Quantization-aware training's wrapping: which layers tfmot can wrap, the wrapping itself (the
whole model, or the named layers), and the float model inside a QAT model. tfmot loads lazily.
"""

from __future__ import annotations

import os
import re

import tf_keras as keras

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
from qlab.training import models

QAT_SELECTED = (
    "fit.quantize_aware(model, layers=(...)) or TrainConfig(qat_layers=(...)) to train QAT "
    "on the other layers only"
)


def check_keras2(model, what: str = "quantization-aware training") -> None:
    """Raises TypeError, saying how to build one, for anything but a tf_keras (Keras 2) model."""
    if isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"{what} takes a tf_keras model, got the name {str(model)!r}; load a saved one "
            "first: tf_keras.models.load_model(path)"
        )
    if not isinstance(model, keras.Model):
        kind = f"{type(model).__module__}.{type(model).__name__}"
        raise TypeError(
            f"{what} needs a tf_keras (Keras 2) model, got {kind}. "
            "tensorflow-model-optimization does not support Keras 3. Build the model with "
            "`import tf_keras as keras` (or qlab.build_model()), or import qlab before "
            "TensorFlow so that tf.keras is Keras 2."
        )


def unsupported(model, layers: tuple[str, ...] | None = None) -> list[str]:
    """Returns one description per layer (of those named) that tfmot's QAT fails on before saying
    why: TFOpLambda, `Lambda`, a SeparableConv2D beside Conv2D layers, nested models. Others (an
    LSTM, ...) are named by `quantize_aware` from tfmot's error."""
    found = []
    for layer in model.layers:
        kind = type(layer).__name__
        # a Lambda fails the whole model
        if layer.name not in (layers or [layer.name]) and kind != "Lambda":
            continue
        if isinstance(layer, keras.Model):
            found.append(f"{layer.name!r} ({kind}, a model inside the model)")
        elif kind == "TFOpLambda":
            found.append(f"{layer.name!r} ({kind}, an inline TensorFlow op)")
        elif kind == "Lambda":
            found.append(
                f"{layer.name!r} ({kind}: tfmot rebuilds the whole model from its config, which "
                "Keras refuses for a Lambda layer; replace it with a built-in layer)"
            )
        elif kind == "SeparableConv2D" and any(
            type(other).__name__ == "Conv2D" for other in model.layers
        ):
            found.append(
                f"{layer.name!r} ({kind} in a model with Conv2D layers: "
                "tfmot 0.8.1 rewrites it as "
                "DepthwiseConv2D + Conv2D and then loops forever or mixes up the convs' weights; "
                "write it as DepthwiseConv2D + Conv2D(kernel_size=1) yourself)"
            )
    return found


def refuse_recurrent(name: str, what: str) -> None:
    """Raises ValueError, naming them, if the zoo model `name` has recurrent layers (no QAT)."""
    with models.fresh_names():
        recurrent = models.recurrent_layers(models.build(name))
    if recurrent:
        raise ValueError(
            f"model {name!r} has recurrent layers ({', '.join(recurrent)}): tfmot cannot wrap them "
            f"for QAT, so it has no {what}"
        )


_NOT_SUPPORTED = re.compile(r"Layer (\S+?):<class '[\w.]*?(\w+)'> is not supported")


def quantize_aware(model, layers: tuple[str, ...] | None = None):
    """Returns a new tf_keras model wrapped for QAT (tfmot's default 8-bit scheme), every layer or
    only the named ones, with fresh names.

    Raises TypeError if not tf_keras; ValueError for an unknown name in `layers`, or layers tfmot
    cannot wrap (named, with the way to train QAT on the others).
    """
    import tensorflow_model_optimization as tfmot  # loaded when QAT is asked for

    check_keras2(model)
    qk = tfmot.quantization.keras
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(layers or ()) - names)
    if unknown:
        raise ValueError(
            f"no layer named {', '.join(unknown)}; the model's layers: {', '.join(sorted(names))}"
        )
    refused = unsupported(model, layers)
    try:
        if refused:
            raise RuntimeError("refused before wrapping")
        with models.fresh_names():
            if layers is None:
                return qk.quantize_model(model)
            annotated = keras.models.clone_model(
                model,
                clone_function=lambda layer: (
                    qk.quantize_annotate_layer(layer) if layer.name in layers else layer
                ),
            )
            annotated.set_weights(model.get_weights())
            return qk.quantize_apply(annotated)
    except (RuntimeError, ValueError) as exc:
        refused += [f"{name!r} ({kind})" for name, kind in _NOT_SUPPORTED.findall(str(exc))]
        if not refused:
            raise
        raise ValueError(
            f"tfmot's QAT cannot wrap {', '.join(refused)} of model {model.name!r}; use "
            f"{QAT_SELECTED}, or keep the model float and quantize after training"
        ) from None


def float_copy(qat_model, template):
    """Returns a new plain model of `template`'s architecture (a zoo name or a Keras model, copied)
    holding the QAT model's float (shadow) weights, matched by name: the QAT model's *float
    reference*. Raises ValueError for a template layer whose weights the QAT model lacks."""
    if isinstance(template, str):
        plain = models.build(template)
    else:
        with models.fresh_names():
            plain = keras.models.clone_model(template)
    wrapped = {layer.name.removeprefix("quant_"): layer for layer in qat_model.layers}
    for layer in plain.layers:
        if not layer.weights:
            continue
        source = wrapped.get(layer.name)
        by_name = {_weight_name(w): w for w in (source.weights if source is not None else [])}
        missing = [w.name for w in layer.weights if _weight_name(w) not in by_name]
        if missing:
            raise ValueError(
                f"the QAT model {qat_model.name!r} has no weights {', '.join(missing)} for layer "
                f"{layer.name!r}: pass the architecture the QAT model was made from"
            )
        layer.set_weights([by_name[_weight_name(w)].numpy() for w in layer.weights])
    return plain


def _weight_name(variable) -> str:
    """'conv2d/kernel:0' -> 'conv2d/kernel' (a wrapped layer keeps its own weights' names)."""
    return variable.name.split(":")[0]
