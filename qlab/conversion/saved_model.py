"""The SavedModel the TFLite converter reads, exported once for each state of a model.

`tf.lite.TFLiteConverter.from_keras_model` saves the Keras model as a SavedModel in a fresh folder,
loads it back, and converts what it loaded (tensorflow/lite/python/lite.py,
`TFLiteKerasModelConverterV2._convert_keras_to_saved_model`); for small models that is most of the
time. `keras_converter` is the same converter, except that the next conversion of a model with the
same state (config, layer classes, weights) reads the folder saved before: same `.tflite` bytes.

Only models whose config says everything they compute are recognised by content (tf_keras, tfmot
and qlab layers, no `Lambda`, no function of the user's); any other is saved every time.
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
"""Layer classes of `COMPLETE_CONFIG` whose config does not hold all they compute."""
FUNCTION_MODULES = ("tensorflow.", "keras.", "numpy")
"""Besides `COMPLETE_CONFIG`: modules whose functions a config may name safely."""

_held: collections.OrderedDict = collections.OrderedDict()  # state key -> (folder, loaded object)
_counts = {"saved": 0, "reused": 0}
_switch = {"on": True}


def state_key(model) -> str:
    """Returns the SHA-256 hex digest the saved folder depends on: config, layer (and quantize
    config) classes, weights; plus the model's `id` if it is not `fully_described`."""
    return _state(model)[0]


def fully_described(model) -> bool:
    """True if config, layer classes and weights say everything `model` computes (tf_keras,
    tfmot or qlab layers, no `Lambda`, no function of the user's); only such models are reused
    here and cached on disk by `qlab.artifacts`."""
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
    """A callable written outside TensorFlow, tf_keras, tfmot and qlab (under `tf.function`,
    `partial` and decorators): a config holds only its name, which a notebook may redefine."""
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
    """Returns {"saved": int, "reused": int, "held": folders held now} for this process."""
    return {**_counts, "held": len(_held)}


def clear() -> None:
    """Delete every saved folder held (the next conversion of any model saves it again)."""
    while _held:
        _held.popitem(last=False)[1][0].cleanup()


@contextlib.contextmanager
def turned_off():
    """Inside the block, every conversion takes TensorFlow's own route (saving each time)."""
    _switch["on"] = False
    try:
        yield
    finally:
        _switch["on"] = True


def keras_converter(model):
    """Returns `tf.lite.TFLiteConverter.from_keras_model(model)`, not yet set or run, that saves
    each model state once (unless `turned_off`)."""
    import tensorflow as tf  # lazily: TensorFlow is loaded only by what converts

    # also marks the file's metadata "KERAS_MODEL"
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
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
            # the save failed; the converter took its other route
            if self.saved_model_dir != folder.name:
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
