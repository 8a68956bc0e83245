"""The TFLite converter, set from one row of the mode table: the calibration checks before it
runs, the settings, the conversion itself, and what its failures mean in Keras terms.

Shared by `qlab.conversion.to_tflite.quantize` and the QuantizationDebugger route
(`qlab.conversion.debugger`). TensorFlow is imported lazily.
"""

from __future__ import annotations

import re

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from qlab.conversion import modes, saved_model
from qlab.infra import quiet
from qlab.tflite import naming

# tfmot's fake-quant wrapper classes: a model holding one is quantization-aware trained
QAT_LAYER_TYPES = ("QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer")
MAX_CALIBRATION = 100_000  # samples a calibration generator may yield before it counts as endless
TRAINING_WRAPPERS = {"PruneLowMagnitude": "strip_pruning", "ClusterWeights": "strip_clustering"}
"""tfmot's pruning and clustering wrappers (and subclasses), and the tfmot call that strips each."""


class ConversionError(RuntimeError):
    """The TFLite converter refused the model, or produced one the mode does not allow. The message
    names the op and Keras layer where it can; `log` holds what the converter printed."""


def is_qat(model) -> bool:
    """True if `model` carries tfmot's fake-quant wrappers (`QAT_LAYER_TYPES`)."""
    return any(type(layer).__name__ in QAT_LAYER_TYPES for layer in getattr(model, "layers", []))


def as_samples(calibration, sample_shape: tuple[int, ...]) -> np.ndarray:
    """Returns calibration in any of TensorFlow's forms as one array, batch axis first.

    Takes an array, a representative-dataset function, a generator or a `tf.data.Dataset`; items
    may be `[batch]` (the converter's convention), bare arrays, tuples of one array, or single
    samples (items of `sample_shape`). Raises ValueError for an empty or endless generator, or
    items with more than one array.
    """
    calibration = _iterable(calibration)
    if (
        calibration is None
        or isinstance(calibration, (np.ndarray, list))
        or not hasattr(calibration, "__next__")
    ):
        return np.asarray(calibration)
    batches = []
    for item in calibration:
        batches.append(_as_batch(item, sample_shape))
        if sum(len(b) for b in batches) > MAX_CALIBRATION:
            raise ValueError(
                f"the calibration generator yielded more than {MAX_CALIBRATION:,} samples; pass a "
                "finite one (e.g. dataset.take(100))"
            )
    if not batches:
        raise ValueError("the calibration generator yielded nothing: pass at least one sample")
    if len({b.shape[1:] for b in batches}) != 1:
        raise ValueError(
            f"calibration items have different shapes: {sorted({b.shape for b in batches})}"
        )
    return np.concatenate(batches)


def _iterable(calibration):
    if hasattr(calibration, "as_numpy_iterator"):  # a tf.data.Dataset
        return calibration.as_numpy_iterator()
    if callable(calibration):
        return calibration()
    return calibration


def _as_batch(item, sample_shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(item, dict) or (isinstance(item, (list, tuple)) and len(item) != 1):
        raise ValueError(
            "each calibration item must hold one array (a model with one input); got "
            f"{type(item).__name__} of {len(item)}"
        )
    item = np.asarray(item[0] if isinstance(item, (list, tuple)) else item)
    return item[np.newaxis] if item.shape == tuple(sample_shape) else item


def check_calibration(model, calibration, mode: modes.Mode) -> np.ndarray | None:
    """Validates calibration (any form `as_samples` takes) before the converter sees it.

    Returns None for modes without calibration, else float32 (n,) + the input sample shape.
    Raises ValueError, saying what to pass instead, for a model whose input is not float, or
    calibration missing, empty, one sample, the wrong shape, non-numeric, or not finite.
    """
    if not mode.needs_calibration:
        return None
    dtypes = {str(getattr(t.dtype, "name", t.dtype)) for t in getattr(model, "inputs", None) or []}
    if dtypes - {"float32", "float16", "float64"}:
        raise ValueError(
            f"mode {mode.name!r} calibrates on float inputs, and model {model.name!r} takes "
            f"{', '.join(sorted(dtypes))} (token ids for an Embedding?): "
            "qlab feeds calibration samples as "
            "float32 only; use mode 'dynamic_range', or 'float32'/'float16'"
        )
    if calibration is None:
        raise ValueError(
            f"mode {mode.name!r} needs calibration data: pass calibration= a float array "
            "of representative inputs, e.g. qlab.representative_dataset(x_train) (100 of them)"
        )
    if hasattr(calibration, "x_train"):
        raise ValueError(
            "calibration takes representative samples, not a data set: pass e.g. "
            "qlab.representative_dataset(dataset.x_train)"
        )
    calibration = as_samples(calibration, tuple(model.input_shape[1:]))
    expected = tuple(model.input_shape[1:])
    if calibration.ndim == len(expected) and calibration.shape == expected:
        raise ValueError(
            f"calibration has the shape of one sample {calibration.shape}; "
            f"pass a batch of samples, shape (n,) + {expected}"
        )
    if calibration.size == 0 or len(calibration) == 0:
        raise ValueError(
            f"calibration set for mode {mode.name!r} is empty: pass at least one sample "
            f"of shape {expected} (a few dozen to a few hundred is typical)"
        )
    if tuple(calibration.shape[1:]) != expected:
        raise ValueError(
            f"calibration samples have shape {tuple(calibration.shape[1:])}, but the model "
            f"takes {expected}: pass an array of shape (n,) + {expected}"
        )
    if not np.issubdtype(calibration.dtype, np.number):
        raise ValueError(f"calibration must be numeric, got dtype {calibration.dtype}")
    calibration = calibration.astype(np.float32)
    if not np.all(np.isfinite(calibration)):
        raise ValueError("calibration contains NaN or infinite values")
    return calibration


def converter_for(
    model, mode: modes.Mode, calibration: np.ndarray | None, per_channel: bool = True
):
    """Returns a `tf.lite.TFLiteConverter`, not yet run, set up from the mode's row; checked
    `calibration` samples are fed one at a time. `per_channel=False` sets the converter's private
    `_experimental_disable_per_channel`: one weight scale per tensor."""
    import tensorflow as tf  # lazily: see the module docstring

    converter = saved_model.keras_converter(model)  # from_keras_model, saving each model state once
    if mode.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode.supported_types:
        converter.target_spec.supported_types = [getattr(tf, t) for t in mode.supported_types]
    if mode.supported_ops:
        converter.target_spec.supported_ops = [
            getattr(tf.lite.OpsSet, o) for o in mode.supported_ops
        ]
    if mode.io != "float32":
        converter.inference_input_type = getattr(tf, mode.io)
        converter.inference_output_type = getattr(tf, mode.io)
    if calibration is not None:

        def representative_dataset():
            for sample in calibration:
                yield [sample[np.newaxis]]

        converter.representative_dataset = representative_dataset
    if not per_channel:
        converter._experimental_disable_per_channel = True  # the converter's per-tensor switch
    return converter


def check_convertible(model, mode: modes.Mode) -> None:
    """Refuses, with the fix, models the converter fails on or would convert wrongly.

    Raises ValueError for a `TRAINING_WRAPPERS` layer left on (the file would hold its training
    ops), naming the tfmot call that strips it; ConversionError for recurrent layers with a
    dynamic batch (an LSTM lowers to UNIDIRECTIONAL_SEQUENCE_LSTM only for a fixed batch).
    """
    stray = sorted(
        {
            TRAINING_WRAPPERS[c.__name__]
            for layer in naming.leaf_layers(model)
            for c in type(layer).__mro__
            if c.__name__ in TRAINING_WRAPPERS
        }
    )
    if stray:
        raise ValueError(
            f"model {model.name!r} still carries tfmot's training wrappers; call tfmot's "
            f"{' and '.join(stray)} on it first "
            "(qlab.training.pruning.prune and qlab.training.clustering.cluster do)"
        )
    recurrent = naming.recurrent_layers(model)
    if recurrent and model.input_shape[0] is None:
        raise ConversionError(
            f"converting to {mode.name!r}: recurrent layer {', '.join(map(repr, recurrent))} "
            "needs a fixed batch size; convert qlab.training.models.with_batch_size(model, 1) "
            "(same weights, batch 1), or build the model with keras.Input(..., batch_size=1). "
            "Train on batches with the model as it is."
        )


def convert(converter, model, mode: modes.Mode) -> bytes:
    """Runs `converter` with its log held back. Returns the .tflite bytes.

    Raises ConversionError (message from `explain`, `.log` the converter's output) if it fails.
    """
    with quiet.stderr() as log:
        try:
            tflite = bytes(converter.convert())
        except Exception as exc:  # the converter raises several types; all mean the same here
            error = ConversionError(explain(exc, model, mode))
            error.log = log.read()  # what the converter printed, for whoever needs it
            raise error from exc
    return zero_stray_buffers(tflite)


def zero_stray_buffers(tflite: bytes) -> bytes:
    """Returns the .tflite with every buffer no tensor or metadata refers to zeroed (same size;
    the same object if none needs it). TF 2.21 leaves such a buffer in an LSTM's int8 file, holding
    whatever memory held; zeroed, a model converts to the same bytes every time."""
    model = schema.Model.GetRootAs(tflite, 0)
    used = {model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        used |= {graph.Tensors(t).Buffer() for t in range(graph.TensorsLength())}
    stray = [
        b for b in range(model.BuffersLength()) if b not in used and model.Buffers(b).DataLength()
    ]
    if not stray:
        return tflite
    edited = bytearray(tflite)
    model = schema.Model.GetRootAs(edited, 0)
    for b in stray:
        model.Buffers(b).DataAsNumpy()[:] = 0  # a view into `edited`
    return bytes(edited)


def layers_named_in(text: str, layer_names: list[str]) -> list[str]:
    """Returns, sorted, the layer names that appear as a path segment (…/name/…) in `text`."""
    return sorted(
        n for n in layer_names if re.search(rf"(^|/)(quant_)?{re.escape(n)}(/|$|;|\b)", text)
    )


def layers_with_op(model, op_type: str) -> list[str]:
    """Returns, sorted, the layers whose graph holds an op of `op_type` (e.g. 'Erf'); empty if
    the model cannot be traced."""
    import tensorflow as tf  # lazily: see the module docstring

    try:
        spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
        graph = tf.function(model).get_concrete_function(spec).graph
    except Exception:  # tracing is best effort: it only improves the message
        return []
    names = [layer.name for layer in model.layers]
    found = set()
    for op in graph.get_operations():
        if op.type == op_type:
            found.update(layers_named_in(op.name, names))
    return sorted(found)


_OP_RE = re.compile(r"'(tfl\.[a-z_0-9]+|tf\.[A-Za-z0-9_]+)' op")


def explain(exc: Exception, model, mode: modes.Mode) -> str:
    """Names the op and Keras layer the converter complained about, and what to do.

    Returns two lines: the diagnosis, then the converter's first error line.
    """
    text = str(exc)
    ops = sorted(set(_OP_RE.findall(text)))
    layers = _layers_of(text, ops, model)
    what = f"converting to {mode.name!r} failed"
    if ops:
        what += f": op {', '.join(ops)}"
    if layers:
        what += f" in layer {', '.join(repr(n) for n in sorted(set(layers)))}"
    what += _remedy(ops, mode) + _unsupported(text, model, mode)
    first_error = next(
        (ln.strip() for ln in text.splitlines() if "error" in ln.lower()), text[:300]
    )
    return f"{what}.\nConverter said: {first_error[-400:]}"


def _layers_of(text: str, ops: list[str], model) -> list[str]:
    layers = layers_named_in(text, [layer.name for layer in model.layers])
    if not layers:
        for op in ops:
            if op.startswith("tf."):
                layers += layers_with_op(model, op[3:])
    return layers


def _remedy(ops: list[str], mode: modes.Mode) -> str:
    if any(op.startswith("tf.") for op in ops):
        return " has no TFLite builtin kernel; replace the layer, or remove it from the model"
    if "TFLITE_BUILTINS_INT8" in mode.supported_ops:
        return (
            " has no int8 kernel. Use mode 'full_integer' (int8 with float fallback for "
            "such ops), or replace the layer with one that has an int8 kernel"
        )
    return ""


def _unsupported(text: str, model, mode: modes.Mode) -> str:
    unsupported = re.search(r"not yet supported for op: '([A-Z_0-9]+)'", text)
    if not unsupported:
        return ""
    kind = unsupported.group(1)
    owners = naming.recurrent_layers(model) if "LSTM" in kind or "RNN" in kind else []
    return (
        f": the quantizer has no {mode.name} rule for op {kind}"
        + (f" (layer {', '.join(map(repr, owners))})" if owners else "")
        + "; use another mode for this model"
    )
