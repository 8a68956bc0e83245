"""qlab: see quantization happen on a model you can train in seconds.

The front door, for the main job: take or train a model, quantize it in a mode, measure it, read
its per-layer error::

    import qlab
    digits = qlab.load_dataset("digits")
    model = qlab.train(qlab.build_model("digits_cnn", seed=0), digits, epochs=10)
    int8 = qlab.quantize(model, "integer_only", qlab.representative_dataset(digits.x_train))
    qlab.accuracy(int8, digits.x_test, digits.y_test)
    qlab.layer_errors(int8, qlab.quantize(model, "float32"), digits.x_test)

- `load_dataset`, `dataset`: a built-in data set, or your own arrays, split.
- `representative_dataset`: seeded calibration samples drawn from a split.
- `build_model`, `fresh_names`: a zoo model; Keras names independent of what ran before.
- `train`: your model trained, seeded and cached; `quantize_aware`: wrapped for QAT.
- `MODES`, `quantize`: the converter's post-training modes; a `.tflite` in one (cached).
- `accuracy`: a `.tflite`'s accuracy, run in LiteRT; `Runtime`: the interpreter, float in and out.
- `layer_errors`: per-layer error against the float reference (`qlab.analysis.per_layer`).
- `intmath`: the integer engine (`IntegerModel`, `compare`), bit for bit with LiteRT.
- `analysis`, `plots`: deeper: grids, buckets, variants; one function per figure.

Names load on first use, so `import qlab` loads no TensorFlow. Everything else stays importable
from its module. Importing qlab makes one switch: ``TF_USE_LEGACY_KERAS=1``, so that ``tf.keras``
is Keras 2 (tf_keras), which tensorflow-model-optimization requires; if TensorFlow already
resolved ``tf.keras`` to Keras 3, importing qlab fails and says how to fix it.
"""

import importlib
import importlib.util
import os
import sys

__version__ = "0.1.0"

# front-door name -> (module, attribute); None: the module itself
_FRONT_DOOR = {
    "load_dataset": ("qlab.training.data", "load"),
    "dataset": ("qlab.training.data", "dataset"),
    "representative_dataset": ("qlab.training.data", "calibration"),
    "build_model": ("qlab.training.models", "build"),
    "fresh_names": ("qlab.training.models", "fresh_names"),
    "train": ("qlab.artifacts", "trained_model"),
    "quantize_aware": ("qlab.training.qat", "quantize_aware"),
    "MODES": ("qlab.conversion.modes", "MODES"),
    "quantize": ("qlab.artifacts", "quantized_model"),
    "accuracy": ("qlab.tflite.measure", "accuracy"),
    "layer_errors": ("qlab.analysis.per_layer", "layer_errors"),
    "Runtime": ("qlab.tflite.runtime", "Runtime"),
    "intmath": ("qlab.intmath", None),
    "analysis": ("qlab.analysis", None),
    "plots": ("qlab.plots", None),
}
__all__ = list(_FRONT_DOOR)

KERAS3_LOADED_MESSAGE = (
    "TensorFlow was imported and tf.keras already resolved to Keras 3 before qlab "
    "was imported. qlab (through tensorflow-model-optimization) needs Keras 2 "
    "(the tf_keras package). Fix: restart the kernel or interpreter and `import qlab` "
    "before anything touches tf.keras, or set the environment variable "
    "TF_USE_LEGACY_KERAS=1 before starting Python."
)


# the packages by job, for those who go deeper: `qlab.infra.progress` works after `import qlab`
_PACKAGES = ("infra", "tflite", "training", "conversion", "artifacts", "perf", "studies")


def __getattr__(name: str):
    if name in _PACKAGES:
        return importlib.import_module(f"qlab.{name}")
    if name not in _FRONT_DOOR:
        raise AttributeError(
            f"module 'qlab' has no attribute {name!r}; the front door: {', '.join(__all__)}; "
            f"deeper, by job: {', '.join(_PACKAGES)}"
        )
    module, attribute = _FRONT_DOOR[name]
    found = importlib.import_module(module)
    return found if attribute is None else getattr(found, attribute)


def __dir__() -> list[str]:
    return sorted([*__all__, *_PACKAGES, "__version__"])


def _submodules(package: str):
    """Returns a module `__getattr__` for `package` that imports its submodules on first use
    (`qlab.infra.progress` after `import qlab`)."""

    def load(name: str):
        if importlib.util.find_spec(f"{package}.{name}") is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return importlib.import_module(f"{package}.{name}")

    return load


def _use_keras2() -> None:
    """Route tf.keras to tf_keras, or fail loudly if it is too late to do so."""
    tf = sys.modules.get("tensorflow")
    keras = tf.__dict__.get("keras") if tf is not None else None
    if keras is not None:
        # TensorFlow's lazy loader (resolved or not) or the module it already loaded:
        # Keras 3 lives under "keras._tf_keras.keras", Keras 2 under "tf_keras.".
        name = keras.__dict__.get("__name__") or ""
        if keras.__dict__.get("_tfll_keras_version") == "keras_3" or name.startswith("keras."):
            raise ImportError(KERAS3_LOADED_MESSAGE)
    os.environ["TF_USE_LEGACY_KERAS"] = "1"


_use_keras2()
