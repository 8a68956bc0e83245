"""The explorer's Keras half: which layers it can quantize, where their activations are taken, and a
copy of the model with a fake-quant site after each of them.

A layer can be explored if it is one of the model's own layers (not inside a nested model), is
called once, and has a kernel (a weight whose name ends in "kernel": Dense, Conv, DepthwiseConv,
LSTM ...). Its *site* is where the converter would quantize its output: after the BatchNorm and
ReLU layers that follow it alone (the converter fuses a conv with them; `qlab.tflite.naming` names
the fused op after the conv), else its own output. TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import numpy as np

from qlab.analysis import buckets, grid

FUSED = (
    "BatchNormalization",
    "ReLU",
    "Activation",
)  # layers the converter folds into the op before them


def explorable(model) -> list[str]:
    """The model's layers with a kernel that are called once, in the model's order.

    Returns:
        their names (list of str).
    """
    return [
        layer.name
        for layer in model.layers
        if not isinstance(getattr(layer, "layers", None), list)
        and len(getattr(layer, "inbound_nodes", ())) == 1
        and kernel_names(layer)
    ]


def kernel_names(layer) -> list[str]:
    """Returns the short names (list of str) of a layer's kernels: its weights named
    "...kernel:0"."""
    return [
        n
        for n in (w.name.split("/")[-1].split(":")[0] for w in layer.weights)
        if n.endswith("kernel")
    ]


def site(model, name: str) -> str:
    """The layer whose output is `name`'s quantized activation: `name`, or the last of the
    BatchNormalization and ReLU layers (`qlab.analysis.buckets.relu_cap`: relu or relu6) that
    follow it one by one, each the only layer reading the previous one's output.

    Returns:
        a layer name (str).
    """
    layers = {
        id(each.input): each
        for each in model.layers
        if len(getattr(each, "inbound_nodes", ())) == 1
        and type(each).__name__ != "InputLayer"
        and not isinstance(each.input, list)
    }
    readers = {}
    for layer in model.layers:
        for node in getattr(layer, "inbound_nodes", ()):
            for tensor in node.keras_inputs:
                readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    outputs = {id(t) for t in model.outputs}
    current = model.get_layer(name)
    while id(current.output) not in outputs and readers.get(id(current.output)) == 1:
        follower = layers.get(id(current.output))
        if (
            follower is None
            or type(follower).__name__ not in FUSED
            or (
                type(follower).__name__ != "BatchNormalization"
                and buckets.relu_cap(follower) is False
            )
        ):
            break
        current = follower
    return current.name


def _channels_last(layer, name: str, w: np.ndarray) -> np.ndarray:
    """A kernel with its output channels on the last axis: a depthwise kernel (kh, kw, in,
    multiplier) becomes (kh, kw, in × multiplier); a transposed conv's (..., out, in) swaps its last
    two axes."""
    if name == "depthwise_kernel":
        return w.reshape(w.shape[:-2] + (-1,))
    if type(layer).__name__.endswith("Transpose"):
        return np.swapaxes(w, -1, -2)
    return w


def _from_channels_last(layer, name: str, w: np.ndarray, shape: tuple) -> np.ndarray:
    """Undo `_channels_last` (returns an array of `shape`)."""
    if type(layer).__name__.endswith("Transpose") and name != "depthwise_kernel":
        w = np.swapaxes(w, -1, -2)
    return w.reshape(shape)


class _FakeQuant:
    """A site's NumPy body: identity, or the round trip through `grid` once set."""

    grid: grid.Grid | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x if self.grid is None else self.grid.round_trip(x).astype(x.dtype)


def _site_layer(fake: _FakeQuant, name: str):
    import tensorflow as tf
    import tf_keras as keras

    def body(t):
        y = tf.numpy_function(
            fake, [t], t.dtype, stateful=True
        )  # stateful: read the grid at every run
        y.set_shape(t.shape)
        return y

    return keras.layers.Lambda(body, name=name)


def _check_model(model, sample_shape) -> None:
    """Raise ValueError for a model `Sites` cannot explore (the cases its docstring lists)."""
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"model {model.name!r} has no inputs yet: build it (keras.Input first, or "
            "call it once) before exploring it"
        )
    wrapped = [each.name for each in model.layers if type(each).__name__.startswith("Quantize")]
    if wrapped:
        raise ValueError(
            f"model {model.name!r} is wrapped for QAT ({', '.join(wrapped[:3])} ...): the "
            "explorer quantizes a float model; pass the float model QAT started from"
        )
    if len(model.inputs) != 1:
        raise ValueError(
            f"model {model.name!r} has {len(model.inputs)} inputs; the explorer takes one"
        )
    if tuple(model.input_shape[1:]) != tuple(sample_shape):
        raise ValueError(
            f"model {model.name!r} takes samples of shape {tuple(model.input_shape[1:])}, "
            f"the data set has {tuple(sample_shape)}"
        )
    if len(model.outputs) != 1 or (model.output_shape[-1] or 0) < 2:
        raise ValueError(
            f"model {model.name!r} must have one output with a score per class (the "
            f"accuracy is its argmax); its output shape is {model.output_shape}"
        )


class Sites:
    """A float model's explorable layers, their sites, and a copy of the model with a fake-quant
    site after each (see the module docstring).

    Attributes:
        layers: {explorable layer: its site layer}, in the model's order.

    Raises:
        ValueError: a model not built yet, a QAT model (tfmot wrappers), several inputs, samples
            of another shape than its input, a single output unit, or no explorable layer.
    """

    def __init__(self, model, sample_shape):
        import tensorflow as tf
        import tf_keras as keras

        _check_model(model, sample_shape)
        self.layers = {name: site(model, name) for name in explorable(model)}
        if not self.layers:
            raise ValueError(
                f"model {model.name!r} has no layer with a kernel (Dense, Conv ...) to quantize"
            )
        self.model, self.fake = model, {s: _FakeQuant() for s in self.layers.values()}
        copies = {}

        def clone(layer):
            copy = copies[layer.name] = type(layer).from_config(layer.get_config())
            if layer.name not in self.fake:
                return copy
            return keras.Sequential(
                [copy, _site_layer(self.fake[layer.name], f"{layer.name}_fake_quant")],
                name=f"{layer.name}_site",
            )

        self.copy = keras.models.clone_model(model, clone_function=clone)
        for layer in model.layers:
            if layer.name in copies:
                copies[layer.name].set_weights(layer.get_weights())
        self._copies = copies
        sites = list(self.fake)
        probe = keras.Model(model.inputs, [model.get_layer(s).output for s in sites])
        self._probe = tf.function(lambda x: probe(x, training=False), reduce_retracing=True)
        self._run = tf.function(lambda x: self.copy(x, training=False), reduce_retracing=True)

    def kernels(self, layer: str) -> dict[str, np.ndarray]:
        """A layer's kernels as the float model holds them, output channels on the last axis.

        Returns:
            {short name ("kernel", "recurrent_kernel" ...): float64 array}.
        """
        source = self.model.get_layer(layer)
        names = [w.name.split("/")[-1].split(":")[0] for w in source.weights]
        return {
            n: _channels_last(source, n, np.asarray(v, np.float64))
            for n, v in zip(names, source.get_weights())
            if n in kernel_names(source)
        }

    def float_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Each explorable layer's float output at its site, for inputs `x`.

        Returns:
            {layer: float32 array (n,) + its output shape}.
        """
        import tensorflow as tf

        outputs = self._probe(tf.constant(np.asarray(x, np.float32)))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        by_site = dict(zip(self.fake, (np.asarray(o) for o in outputs)))
        return {name: by_site[s] for name, s in self.layers.items()}

    def accuracy(
        self,
        x: np.ndarray,
        y: np.ndarray,
        layer: str | None = None,
        kernels=None,
        activation_grid: grid.Grid | None = None,
    ) -> float:
        """Test accuracy of the copy with `layer`'s kernels replaced by `kernels` ({short name:
        channels-last array}) and its site's output put on `activation_grid`; both are put back
        to float before returning (also on error).

        Returns:
            the fraction of `x` whose argmax output is `y`, in [0, 1].
        """
        import tensorflow as tf

        kernels = kernels or {}
        copy = self._copies[layer] if layer else None
        original = copy.get_weights() if copy is not None and kernels else None
        if original is not None:
            names = [w.name.split("/")[-1].split(":")[0] for w in copy.weights]
            copy.set_weights(
                [
                    _from_channels_last(copy, n, kernels[n], w.shape).astype(w.dtype)
                    if n in kernels
                    else w
                    for n, w in zip(names, original)
                ]
            )
        fake = self.fake[self.layers[layer]] if layer else None
        if fake is not None:
            fake.grid = activation_grid
        try:
            scores = np.asarray(self._run(tf.constant(np.asarray(x, np.float32))))
        finally:
            if original is not None:
                copy.set_weights(original)
            if fake is not None:
                fake.grid = None
        return float(np.mean(scores.argmax(axis=-1) == np.asarray(y)))
