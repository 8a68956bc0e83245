"""The SavedModel the TFLite converter reads, exported once for each state of a model.

`tf.lite.TFLiteConverter.from_keras_model` saves the Keras model as a SavedModel in a fresh
temporary folder, loads it back, and converts what it loaded (tensorflow/lite/python/lite.py,
`TFLiteKerasModelConverterV2._convert_keras_to_saved_model`). For qlab's small models saving and
loading are most of each conversion, and qlab converts one model to many modes. `keras_converter(model)`
is that same converter, except that a model is saved once: the next conversion of a model with the
same state (architecture, layer classes and weights) reads the folder saved, and loaded, before. What the
converter reads is the same, so the `.tflite` bytes are the same (tests/test_saved_model.py).

The state is read from the model's config, so only layers whose config says everything about them
are recognised by content: tf_keras's, tfmot's and qlab's own, without `Lambda` layers (their
config cannot hold captured values) or functions of the user's (a config names an activation but
does not hold its code). Any other model is saved on every conversion, as TensorFlow does: even the
same object may have changed where neither its config nor its weights show it.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import json
import tempfile

KEEP = 8
"""Saved folders held at once; the least recently used is deleted first."""
COMPLETE_CONFIG = ("tf_keras.", "tensorflow_model_optimization.", "qlab.")
"""Modules whose layer (and quantize config) classes put their whole state in `get_config()`."""
OPAQUE_LAYERS = ("Lambda",)
"""Layer classes of `COMPLETE_CONFIG` whose config does not hold all they compute (captured values)."""
FUNCTION_MODULES = ("tensorflow.", "keras.", "numpy")
"""Besides `COMPLETE_CONFIG`: modules whose functions (activations, ops) a config may name safely."""

_held: collections.OrderedDict = collections.OrderedDict()  # state key -> (folder, loaded object)
_counts = {"saved": 0, "reused": 0}
_switch = {"on": True}


def state_key(model) -> str:
    """What the saved folder of `model` depends on.

    Returns:
        a SHA-256 hex digest of the model's config, the classes of its layers (and quantize
        configs), and its weights (shape, dtype and bytes). For a model that is not
        `fully_described`, the digest also holds the model's `id`.
    """
    return _state(model)[0]


def fully_described(model) -> bool:
    """True if `model`'s config, layer classes and weights say everything it computes: its layers
    are tf_keras's, tfmot's or qlab's own, with no `Lambda` and no function of the user's.

    Returns:
        the answer; only such models are saved once for many conversions here, and cached on disk
        by `qlab.artifacts` (two other models alike in config and weights may compute different
        things, so nothing could tell them apart).
    """
    return not _state(model)[1]


def _state(model) -> tuple[str, bool]:
    h = hashlib.sha256()
    layers = [model, *model.submodules]
    classes = [type(obj) for obj in layers]
    classes += [
        type(obj.quantize_config)
        for obj in layers
        if getattr(obj, "quantize_config", None) is not None
    ]
    opaque = any(
        not c.__module__.startswith(COMPLETE_CONFIG) or c.__name__ in OPAQUE_LAYERS for c in classes
    )
    opaque = opaque or any(_own_function(value) for obj in layers for value in vars(obj).values())
    try:
        config = json.dumps(model.get_config(), sort_keys=True, default=repr)
    except (NotImplementedError, TypeError, ValueError):  # a subclassed model without a config
        config, opaque = "", True
    h.update(config.encode())
    for c in sorted({f"{c.__module__}.{c.__qualname__}@{id(c)}" for c in classes}):
        h.update(c.encode())
    if opaque:
        h.update(f"object {id(model)}".encode())
    for weight in model.weights:
        value = weight.numpy()
        h.update(f"{weight.name}{value.shape}{value.dtype}".encode())
        h.update(value.tobytes())
    return h.hexdigest(), opaque


def _own_function(value) -> bool:
    """A callable (e.g. a layer's activation) written outside TensorFlow, tf_keras, tfmot and qlab,
    looked for under `tf.function`, `functools.partial` and decorators: the config holds only its
    name, and a notebook may redefine it under the same name."""
    if isinstance(value, type) or not callable(value):
        return False
    for _ in range(8):  # tf.function -> python_function, partial -> func, decorator -> __wrapped__
        inner = next(
            (
                getattr(value, a)
                for a in ("python_function", "func", "__wrapped__")
                if getattr(value, a, None) is not None
            ),
            None,
        )
        if inner is None or inner is value:
            break
        value = inner
    module = getattr(value, "__module__", None) or type(value).__module__ or ""
    return not module.startswith(COMPLETE_CONFIG + FUNCTION_MODULES)


def counts() -> dict[str, int]:
    """How often a model was saved and how often a saved folder was read again, in this process.

    Returns:
        {"saved": int, "reused": int, "held": folders held now}.
    """
    return {**_counts, "held": len(_held)}


def clear() -> None:
    """Delete every saved folder held (the next conversion of any model saves it again)."""
    while _held:
        _held.popitem(last=False)[1][0].cleanup()


@contextlib.contextmanager
def turned_off():
    """Inside the block, every conversion takes TensorFlow's own route (saving the model each time):
    to compare the two routes (`qlab.perf.conversions`), or to rule this module out."""
    _switch["on"] = False
    try:
        yield
    finally:
        _switch["on"] = True


def keras_converter(model):
    """`tf.lite.TFLiteConverter.from_keras_model(model)`, saving each model state once (unless
    `turned_off`).

    Returns:
        a `TFLiteKerasModelConverterV2`, not yet set or run.
    """
    import tensorflow as tf  # lazily: TensorFlow is loaded only by what converts

    converter = tf.lite.TFLiteConverter.from_keras_model(
        model
    )  # also marks the file's metadata "KERAS_MODEL"
    if _switch["on"]:
        converter.__class__ = _converter_class()  # the same converter, with the one method below
    return converter


@functools.cache
def _converter_class():
    from tensorflow.lite.python import lite  # lazily: TensorFlow is loaded only by what converts
    from tensorflow.python.saved_model import signature_constants, tag_constants

    class SaveOnceConverter(lite.TFLiteKerasModelConverterV2):
        """The Keras converter, reading a folder saved before when the model's state is the same."""

        def _convert_keras_to_saved_model(self, output_dir):
            key, opaque = _state(self._keras_model)
            if opaque:  # not described by its config: saved every time, as TensorFlow does
                return super()._convert_keras_to_saved_model(output_dir)
            entry = _held.get(key)
            if entry is not None:
                _held.move_to_end(key)
                _counts["reused"] += 1
                return self._load(entry[0].name, entry[1], signature_constants, tag_constants)
            folder = tempfile.TemporaryDirectory(prefix="qlab-saved-model-")
            result = super()._convert_keras_to_saved_model(folder.name)
            if (
                self.saved_model_dir != folder.name
            ):  # the save failed; the converter took its other route
                folder.cleanup()
                return result
            _counts["saved"] += 1
            _held[key] = (folder, self._trackable_obj)
            while len(_held) > KEEP:
                _held.popitem(last=False)[1][0].cleanup()
            return result

        def _load(self, folder, loaded, signature_constants, tag_constants):
            # What the parent does after its save (lite.py, _convert_keras_to_saved_model), with the
            # folder's tf.saved_model.load object (read only: its graph_debug_info) loaded once.
            self.saved_model_dir = folder
            self._saved_model_tags = {tag_constants.SERVING}
            self._saved_model_exported_names = [
                signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY
            ]
            self._parse_saved_model_args(
                always_enable_saved_model_import=self.experimental_lower_to_saved_model
            )
            graph_def, input_tensors, output_tensors = self._load_saved_model(
                folder, self._saved_model_tags
            )
            self._trackable_obj = loaded
            return graph_def, input_tensors, output_tensors

    return SaveOnceConverter
