"""Run models and keep what every layer computed: the deployed .tflite, its float reference, a Keras
model.

The *float reference* of a deployed model is the float32 .tflite of the same Keras model. The
converter lays both out with the same compute ops in the same order (the quantized one adds
QUANTIZE and DEQUANTIZE at its edges and around ops kept in float), so `pair` lines them up op by
op."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from qlab.tflite import flatbuffer, naming
from qlab.tflite.naming import compute_ops
from qlab.tflite.runtime import Runtime
from qlab.vocabulary import WEIGHT_INPUTS


@dataclass
class OpPair:
    """One compute op of the deployed model and the same op in its float reference."""

    name: str  # a unique label: the Keras layer ('head'), 'head/softmax' for a layer's second op
    op: str  # CONV_2D, FULLY_CONNECTED, RESHAPE, SOFTMAX, ...
    deployed: flatbuffer.Op
    reference: flatbuffer.Op
    keras: str = ""  # the Keras layer the op comes from (repeats when one layer gives several ops)

    def output(self, model: Pair) -> flatbuffer.Tensor:
        """Returns the deployed op's (first) output `Tensor` in `model`, the pair of this layer."""
        return model.deployed.tensors[self.deployed.outputs[0]]


@dataclass
class Pair:
    """A deployed .tflite and its float reference: `deployed` and `reference` the parsed files,
    `tflite` and `float_tflite` their bytes, `layers` one `OpPair` per compute op, in op order."""

    deployed: flatbuffer.ModelFile
    reference: flatbuffer.ModelFile
    layers: list[OpPair]
    tflite: bytes
    float_tflite: bytes

    @property
    def names(self) -> list[str]:
        """The layers' names (list of str), in op order."""
        return [layer.name for layer in self.layers]

    def layer(self, name: str) -> OpPair:
        """Returns the `OpPair` called `name`; raises KeyError for an unknown one (listing those
        that exist)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in this model; its layers are: {', '.join(self.names)}")


def pair(tflite: bytes, float_tflite: bytes, keras_model=None) -> Pair:
    """Line up the compute ops of a deployed model with those of its float reference; `keras_model`,
    if at hand, names the layers of nested models and the recurrent ops (`qlab.tflite.naming`).

    Returns the `Pair`.

    Raises:
        ValueError: a quantized float_tflite, or two files whose compute ops or weights differ.
        qlab.tflite.flatbuffer.InvalidModelError: bytes that are not a .tflite."""
    deployed, reference = flatbuffer.read(tflite), flatbuffer.read(float_tflite)
    if any(t.quantized for t in reference.tensors):
        raise ValueError(
            "the float reference must be a float32 .tflite (mode 'float32'); this one is quantized"
        )
    ours, theirs = compute_ops(deployed), compute_ops(reference)
    if [op.name for op in ours] != [op.name for op in theirs]:
        raise ValueError(
            "the two models do not have the same ops, so they are not the same Keras model: "
            f"deployed {[op.name for op in ours]}, float {[op.name for op in theirs]}"
        )
    _check_same_weights(deployed, reference, ours, theirs)
    labels, owners = (
        naming.labels(reference, keras_model),
        naming.layer_names(reference, keras_model),
    )
    layers = [
        OpPair(labels[t.index], op.name, op, t, owners[t.index]) for op, t in zip(ours, theirs)
    ]
    return Pair(deployed, reference, layers, tflite, float_tflite)


def _check_same_weights(deployed, reference, ours, theirs) -> None:
    """Raises ValueError where a quantized weight tensor sits more than one step from the
    reference's weights (rounding leaves at most half a step): not the same trained model."""
    for op, reference_op in zip(ours, theirs):
        if op.name not in WEIGHT_INPUTS:
            continue
        index = WEIGHT_INPUTS[op.name][0]
        q, real = deployed.tensors[op.inputs[index]], reference.tensors[reference_op.inputs[index]]
        if (
            not q.quantized
            or q.data is None
            or real.data is None
            or q.data.shape != real.data.shape
        ):
            continue
        levels = q.data.astype(np.int64)
        values = q.dequantize(levels, np.float64)
        step = q.dequantize(levels + 1, np.float64) - values
        off = np.divide(np.abs(values - real.data), step, out=np.zeros_like(step), where=step > 0)
        if off.max() > 1:
            raise ValueError(
                f"the float reference is not the deployed model's: the weights of "
                f"{reference.tensors[reference_op.outputs[0]].name!r} sit up to "
                f"{off.max():.1f} steps from the deployed ones (rounding leaves half a step). "
                "Pass the float32 file of the same trained model (a QAT model's deployed file: "
                "qlab.analysis.per_layer.qat_vs_deployed)"
            )


def run(
    tflite: bytes, x: np.ndarray, kernels: str = "builtin", carry_state: bool = False
) -> dict[int, np.ndarray]:
    """Every tensor the model computes for inputs `x`, stacked over samples, by tensor index.

    Samples run one at a time, as a deployed model sees them (dynamic-range kernels quantize each
    batch on the fly). Float inputs are quantized with the input's own grid. Kept: the input and
    every op output readable with a batch axis of 1. `carry_state`: a stateful model (LSTM) starts
    each sample from the state the previous one left, as the converter's calibration runs it.

    Returns {tensor index: (n,) + sample shape, in the tensor's dtype (raw integers: see `real`)}.

    Raises:
        ValueError: inputs of the wrong shape, or none; unknown kernels.
        qlab.tflite.flatbuffer.InvalidModelError: bytes LiteRT cannot load."""
    with warnings.catch_warnings():  # keeping intermediates is the point here
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        rt = Runtime(tflite, kernels=kernels, keep_intermediates=True)
    x = flatbuffer.as_batch(np.asarray(x, np.float32), rt.sample_shape)
    model = flatbuffer.read(tflite)
    computed = set(model.inputs) | {o for op in model.ops for o in op.outputs}
    details = [d for d in rt.tensors() if d["index"] in computed and _is_activation(rt, d)]
    kept: dict[int, list] = {d["index"]: [] for d in details}
    for sample in x:
        rt.invoke_raw(rt.quantize_input(sample[np.newaxis]), reset=not carry_state)
        for index, values in kept.items():
            values.append(rt.interpreter.get_tensor(index)[0].copy())
    return {index: np.stack(values) for index, values in kept.items()}


def _is_activation(rt: Runtime, detail: dict) -> bool:
    """A tensor the interpreter can read, with a batch axis (of 1)."""
    shape = detail["shape"]
    if len(shape) == 0 or shape[0] != 1:
        return False
    try:
        rt.interpreter.get_tensor(detail["index"])
    except ValueError:  # tensors with no data (e.g. freed scratch) cannot be read
        return False
    return True


def real(model: flatbuffer.ModelFile, index: int, values: np.ndarray) -> np.ndarray:
    """Returns a captured tensor of `model` dequantized with its own grid, float32."""
    return model.tensors[index].dequantize(values)


def keras_outputs(model, x: np.ndarray, layers: list[str] | None = None) -> dict[str, np.ndarray]:
    """Returns {layer name: float32 (n,) + output shape}: each named Keras layer's output for `x`
    (default: every layer but the input). Raises KeyError for a name the model has no layer of."""
    import tf_keras as keras  # lazily: the .tflite half of this module needs no TensorFlow

    names = layers or [
        layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
    ]
    known = [layer.name for layer in model.layers]
    missing = [n for n in names if n not in known]
    if missing:
        raise KeyError(
            f"no layer {', '.join(map(repr, missing))} in model {model.name!r}; "
            f"its layers are: {', '.join(known)}"
        )
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outputs = probe.predict(np.asarray(x, np.float32), verbose=0, batch_size=256)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return dict(zip(names, outputs))


def preactivation(model, layer: str, x: np.ndarray) -> np.ndarray:
    """Returns a Keras layer's output before its activation for inputs `x`, float32 (for a ReLU or
    Activation layer, its input); the layer is rebuilt with a linear activation and its own weights.

    Raises KeyError for no layer of that name with an activation (a QAT model's layers are
    wrapped, so it has none)."""
    import tf_keras as keras  # lazily: the .tflite half of this module needs no TensorFlow

    target = model.get_layer(layer) if layer in [each.name for each in model.layers] else None
    if target is not None and type(target).__name__ in (
        "ReLU",
        "Activation",
    ):  # the activation is the layer
        return keras.Model(model.inputs, target.input).predict(
            np.asarray(x, np.float32), verbose=0, batch_size=256
        )
    if target is None or not hasattr(target, "activation"):
        with_activation = [each.name for each in model.layers if hasattr(each, "activation")]
        if not with_activation:
            raise KeyError(
                f"model {model.name!r} has no plain layer with an activation (a QAT model's "
                "layers are wrapped): pass the float model, or "
                "fit.float_copy(qat_model, float_architecture)"
            )
        raise KeyError(
            f"no layer {layer!r} with an activation; those with one: {', '.join(with_activation)}"
        )
    inbound = keras.Model(model.inputs, target.input).predict(
        np.asarray(x, np.float32), verbose=0, batch_size=256
    )
    linear = type(target).from_config({**target.get_config(), "activation": "linear"})
    linear.build(inbound.shape)
    linear.set_weights(target.get_weights())
    return np.asarray(linear(inbound))
