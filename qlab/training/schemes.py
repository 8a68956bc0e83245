"""Quantization schemes beyond tfmot's default: weights and activations at their own bit widths
(2 to 8, tfmot's `DefaultNBitQuantizeScheme`), per-layer `QuantizeConfig`s (the TF Dev Summit 2020
talk's "config" route), and a percentile quantizer of your own.

Fewer than 8 bits is a Keras simulation: TFLite runs int8 (and 16x8) kernels; what the converter
keeps (5- to 7-bit activations become int8, 4-bit ones do not convert) is `qlab.studies.bits`'s.
tfmot is imported eagerly: the classes here subclass its interfaces.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

import qlab  # noqa: F401  (the Keras-2 switch must happen before tf_keras loads)
from qlab.training import models
from qlab.training.qat import check_keras2, unsupported

qk = tfmot.quantization.keras
BITS = range(2, 9)
"""Bit widths the fake-quant schemes take (tfmot's quant_ops: "must be between 2 and 8")."""


def check_bits(bits, what: str = "bits") -> int:
    """Returns `bits` as an int if a whole number from 2 to 8; raises ValueError naming `what`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or int(bits) not in BITS:
        raise ValueError(
            f"{what} must be a whole number from 2 to 8 (what tfmot's fake-quant schemes take), "
            f"got {bits!r}"
        )
    return int(bits)


class PercentileQuantizer(qk.quantizers.Quantizer):
    """Fake-quant (`FakeQuantWithMinMaxVars`) on an asymmetric grid of `num_bits` whose range is
    the `100 - percentile` and `percentile` percentiles (widened to include 0), so that outliers do
    not stretch it. In training each batch's percentiles move the range by an exponential moving
    average (`ema_decay`); calibration sets it with `range_of`.

    Raises ValueError for bits outside 2..8, a percentile outside (50, 100], a decay outside [0, 1).
    """

    def __init__(
        self,
        num_bits: int = 8,
        percentile: float = 99.9,
        narrow_range: bool = False,
        ema_decay: float = 0.99,
    ):
        self.num_bits = check_bits(num_bits, "num_bits")
        if (
            isinstance(percentile, bool)
            or not isinstance(percentile, (int, float))
            or not 50 < percentile <= 100
        ):
            raise ValueError(
                f"percentile must be a number above 50 and at most 100, got {percentile!r}"
            )
        if (
            isinstance(ema_decay, bool)
            or not isinstance(ema_decay, (int, float))
            or not 0 <= ema_decay < 1
        ):
            raise ValueError(f"ema_decay must be a number in [0, 1), got {ema_decay!r}")
        self.percentile, self.narrow_range, self.ema_decay = (
            float(percentile),
            bool(narrow_range),
            float(ema_decay),
        )

    def build(self, tensor_shape, name, layer):
        """Returns {"min_var", "max_var"}: scalar non-trainable variables on `layer`, at [-6, 6]."""
        start = {"min": -6.0, "max": 6.0}
        return {
            f"{end}_var": layer.add_weight(
                f"{name}_{end}", initializer=keras.initializers.Constant(value), trainable=False
            )
            for end, value in start.items()
        }

    def range_of(self, values) -> tuple[float, float]:
        """Returns (low, high): the percentiles of `values` (nearest rank), widened to include 0."""
        low, high = np.percentile(
            np.asarray(values, np.float32).ravel(),
            [100 - self.percentile, self.percentile],
            method="nearest",
        )
        return min(float(low), 0.0), max(float(high), 0.0)

    def __call__(self, inputs, training, weights, **kwargs):
        """Returns `inputs` fake-quantized between the range variables (in training, moved first
        towards this batch's percentiles)."""
        low, high = weights["min_var"], weights["max_var"]
        if training:
            ordered = tf.sort(tf.reshape(inputs, [-1]))
            last = tf.cast(tf.size(ordered) - 1, tf.float32)

            def rank(p):
                return tf.gather(ordered, tf.cast(tf.round(last * p / 100.0), tf.int32))

            decay = self.ema_decay
            low = low.assign(
                decay * low + (1 - decay) * tf.minimum(rank(100 - self.percentile), 0.0)
            )
            high = high.assign(decay * high + (1 - decay) * tf.maximum(rank(self.percentile), 0.0))
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, low, high, num_bits=self.num_bits, narrow_range=self.narrow_range
        )

    def get_config(self):
        """Returns the constructor's arguments (dict), for tfmot's serialization."""
        return {
            "num_bits": self.num_bits,
            "percentile": self.percentile,
            "narrow_range": self.narrow_range,
            "ema_decay": self.ema_decay,
        }


_QUANTIZERS = {
    cls.__name__: cls
    for cls in (
        PercentileQuantizer,
        qk.quantizers.MovingAverageQuantizer,
        qk.quantizers.LastValueQuantizer,
        qk.quantizers.AllValuesQuantizer,
    )
}


class BitsConfig(qk.QuantizeConfig):
    """A QuantizeConfig for one layer with a kernel: the kernel on a symmetric narrow-range grid
    of `weight_bits` (per-axis for convolutions, per-tensor for Dense, as tfmot's default), the
    activation's output on an asymmetric grid of `activation_bits` (or `activation_quantizer`'s).

    Raises ValueError for bits outside 2..8 or, when wrapped, a layer with no kernel or
    activation; TypeError for an activation quantizer that is not a tfmot `Quantizer`.
    """

    def __init__(self, weight_bits: int = 8, activation_bits: int = 8, activation_quantizer=None):
        self.weight_bits = check_bits(weight_bits, "weight_bits")
        self.activation_bits = check_bits(activation_bits, "activation_bits")
        if isinstance(activation_quantizer, dict):  # from get_config
            activation_quantizer = _QUANTIZERS[activation_quantizer["class_name"]](
                **activation_quantizer["config"]
            )
        if activation_quantizer is not None and not isinstance(
            activation_quantizer, qk.quantizers.Quantizer
        ):
            raise TypeError(
                f"activation_quantizer must be a tfmot Quantizer, got "
                f"{type(activation_quantizer).__name__}"
            )
        self.custom = activation_quantizer
        self.activation_quantizer = activation_quantizer or qk.quantizers.MovingAverageQuantizer(
            self.activation_bits, per_axis=False, symmetric=False, narrow_range=False
        )

    @staticmethod
    def _kernel(layer) -> str:
        for name in ("depthwise_kernel", "kernel"):
            if getattr(layer, name, None) is not None and hasattr(layer, "activation"):
                return name
        raise ValueError(
            f"BitsConfig quantizes a layer with a kernel and an activation (Dense, Conv2D, "
            f"DepthwiseConv2D); {layer.name!r} ({type(layer).__name__}) has none"
        )

    def get_weights_and_quantizers(self, layer):
        """Returns [(the kernel variable, its weight quantizer)]; raises ValueError without one."""
        kernel = getattr(layer, self._kernel(layer))
        per_axis = len(kernel.shape) > 2
        return [
            (
                kernel,
                qk.quantizers.LastValueQuantizer(
                    self.weight_bits, per_axis=per_axis, symmetric=True, narrow_range=True
                ),
            )
        ]

    def get_activations_and_quantizers(self, layer):
        """Returns [(the layer's activation function, the activation quantizer)]."""
        return [(layer.activation, self.activation_quantizer)]

    def set_quantize_weights(self, layer, quantize_weights):
        """Puts the fake-quantized kernel in the layer's place."""
        setattr(layer, self._kernel(layer), quantize_weights[0])

    def set_quantize_activations(self, layer, quantize_activations):
        """Puts the fake-quantizing activation in the layer's place."""
        layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        """Returns [] (the activation's quantizer already quantizes the output)."""
        return []

    def get_config(self):
        """Returns the bit widths and the custom activation quantizer's class and config (dict)."""
        custom = (
            None
            if self.custom is None
            else {"class_name": type(self.custom).__name__, "config": self.custom.get_config()}
        )
        return {
            "weight_bits": self.weight_bits,
            "activation_bits": self.activation_bits,
            "activation_quantizer": custom,
        }


CUSTOM_OBJECTS = {"BitsConfig": BitsConfig, "PercentileQuantizer": PercentileQuantizer}
"""What `tfmot.quantization.keras.quantize_scope` needs to rebuild a model wrapped with these."""


def quantize_bits(model, weight_bits: int = 8, activation_bits: int = 8, layers=None, configs=None):
    """Returns a new tf_keras model wrapped with tfmot's `DefaultNBitQuantizeScheme`, weights
    copied, ranges at tfmot's starting values (train, or `qlab.analysis.fake_quant.calibrate`).

    `layers`: names (or one name) to quantize, None for all; `configs`: {layer name:
    `QuantizeConfig`}. Raises ValueError for bits outside 2..8, an unknown name, nothing to
    quantize, a model already wrapped, or layers tfmot cannot wrap; TypeError if not tf_keras or
    for a config that is not a `QuantizeConfig`.
    """
    scheme = qk.experimental.default_n_bit.DefaultNBitQuantizeScheme(
        num_bits_weight=check_bits(weight_bits, "weight_bits"),
        num_bits_activation=check_bits(activation_bits, "activation_bits"),
    )
    check_keras2(model)
    layers, configs = _checked_choice(model, layers, configs)
    chosen = None if layers is None else set(layers) | set(configs)
    refused = unsupported(model, None if chosen is None else tuple(chosen))
    if refused:
        raise ValueError(f"tfmot cannot wrap {', '.join(refused)} of model {model.name!r}")

    def annotate(layer):
        if layer.name in configs:
            return qk.quantize_annotate_layer(layer, configs[layer.name])
        return (
            qk.quantize_annotate_layer(layer) if chosen is None or layer.name in chosen else layer
        )

    try:
        with models.fresh_names(), qk.quantize_scope(CUSTOM_OBJECTS):
            annotated = keras.models.clone_model(model, clone_function=annotate)
            annotated.set_weights(model.get_weights())
            return qk.quantize_apply(annotated, scheme)
    except RuntimeError as exc:
        raise ValueError(f"tfmot's n-bit scheme cannot wrap model {model.name!r}: {exc}") from None


def _checked_choice(model, layers, configs) -> tuple:
    """`quantize_bits`'s checks of the model and the layers chosen: (layers, configs)."""
    if any(
        isinstance(layer, qk.QuantizeWrapper) or type(layer).__name__ == "QuantizeLayer"
        for layer in model.layers
    ):
        raise ValueError(f"model {model.name!r} is already wrapped for QAT; pass the float model")
    if isinstance(layers, str):
        layers = (layers,)  # one layer's name, not its letters
    if layers is not None and not configs and not tuple(layers):
        raise ValueError(
            "layers=() names no layer to quantize; pass None for every layer, or a tuple of names"
        )
    configs = dict(configs or {})
    names = {layer.name for layer in model.layers}
    unknown = sorted((set(layers or ()) | set(configs)) - names)
    if unknown:
        raise ValueError(
            f"no layer named {', '.join(unknown)}; the model's layers: {', '.join(sorted(names))}"
        )
    for name, config in configs.items():
        if not isinstance(config, qk.QuantizeConfig):
            raise TypeError(
                f"configs[{name!r}] must be a tfmot QuantizeConfig, got {type(config).__name__}"
            )
    return layers, configs
