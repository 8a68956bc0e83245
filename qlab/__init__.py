"""qlab: see quantization happen on a model you can train in seconds.

Importing qlab makes one switch: ``TF_USE_LEGACY_KERAS=1``, so that ``tf.keras``
is Keras 2 (tf_keras), which tensorflow-model-optimization requires. It must be set
before TensorFlow first resolves ``tf.keras``; if that already happened with
Keras 3, importing qlab fails and says how to fix it.
"""

import os
import sys

__version__ = "0.1.0"

KERAS3_LOADED_MESSAGE = (
    "TensorFlow was imported and tf.keras already resolved to Keras 3 before qlab "
    "was imported. qlab (through tensorflow-model-optimization) needs Keras 2 "
    "(the tf_keras package). Fix: restart the kernel or interpreter and `import qlab` "
    "before anything touches tf.keras, or set the environment variable "
    "TF_USE_LEGACY_KERAS=1 before starting Python."
)


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
