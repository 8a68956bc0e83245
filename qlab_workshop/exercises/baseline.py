"""Checked exercises of notebook 01 (the float baseline): a layer's parameters from its kernel
shape, the accuracy one test image is worth, and the LiteRT interpreter call that agrees with Keras.

The checks compare with Keras's own counts, the test split's length and the Keras model's
probabilities, computed when the check runs. Called with the answer only, they use the baseline the
notebooks share (`qlab.training.fit.TrainConfig()`, cached); the notebook passes its own model.
"""

from __future__ import annotations

import numpy as np

from qlab import artifacts
from qlab.tflite.runtime import Runtime
from qlab.training import data, fit, models
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

PARAMS_HINT = (
    "a layer's parameters are its kernel's values (the product of the kernel shape) plus one "
    "bias per output channel (the kernel shape's last number)"
)


def _layers_with_kernels(model) -> list:
    """The layers of `model` that hold a kernel (conv, dense), in order."""
    return [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]


@feedback.checked("01", hint=PARAMS_HINT)
def check_layer_params(layer_params, model=None):
    """Check the learner's `layer_params(kernel_shape) -> int` against Keras's `count_params()` for
    every layer with a kernel.

    Args:
        layer_params: the learner's function of a kernel shape (a tuple of ints).
        model: the Keras model whose layers to count (default: the baseline's, untrained).
    Returns:
        the message for a right answer.
    Raises:
        Wrong: a count differs (the message names the layer and the slip: the bias left out, or
            counted per input channel).
        Unanswered: the function returns a placeholder.
    """
    model = model if model is not None else models.build(fit.TrainConfig().model)
    layers = _layers_with_kernels(model)
    for layer in layers:
        shape = tuple(int(d) for d in layer.kernel.shape)
        got = feedback.answered(layer_params(shape))
        want = int(layer.count_params())
        if isinstance(got, (float, np.floating)) and float(got).is_integer():
            got = int(got)
        if got == want:
            continue
        kernel = int(np.prod(shape))
        slips = {
            kernel: "that is the kernel alone: add one bias per output channel.",
            kernel + shape[-2]
            if len(shape) > 1
            else None: "the bias has one value per *output* channel "
            "(the last number of the kernel shape), not per input channel.",
            kernel * 2: "the bias is one value per output channel, not one per kernel value.",
        }
        message = slips.get(got, "")
        raise Wrong(
            f"layer {layer.name} (kernel {shape}): Keras counts {want:,} parameters, your function "
            f"gives {got!r}. {message}".rstrip(),
            PARAMS_HINT,
        )
    total = sum(int(layer.count_params()) for layer in layers)
    return f"all {len(layers)} layers match Keras ({total:,} parameters in all)."


STEP_HINT = (
    "one image of the test split is 1/len(y_test) of the accuracy; in percentage points, "
    "100/len(y_test)"
)


@feedback.checked("01", hint=STEP_HINT)
def check_image_step(step_pp, dataset: data.Dataset | None = None):
    """Check the accuracy (in percentage points) one test image is worth: 100 / len(y_test).

    Args:
        step_pp: the learner's number.
        dataset: the data set (default: the baseline's).
    Returns:
        the message for a right answer.
    Raises:
        Wrong: another number (named slips: a fraction instead of percentage points, the training
            split's size, both splits together).
        Unanswered: a placeholder.
    """
    dataset = dataset or data.load(fit.TrainConfig().dataset)
    got = float(feedback.answered(step_pp))
    n_test, n_train = len(dataset.y_test), len(dataset.y_train)
    want = 100 / n_test
    if np.isclose(got, want, rtol=1e-3):
        return f"one of the {n_test} test images is {want:.2f} percentage points of accuracy."
    slips = {
        1 / n_test: "that is a fraction; accuracies here are in percent: multiply by 100.",
        100 / n_train: f"that is one image of the training split ({n_train} images); accuracy is "
        f"measured on the test split ({n_test}).",
        100 / (n_train + n_test): "accuracy is measured on the test split alone.",
    }
    for value, message in slips.items():
        if np.isclose(got, value, rtol=1e-3):
            raise Wrong(message, STEP_HINT)
    raise Wrong(f"expected {want:.4f} percentage points, got {got:.4g}.", STEP_HINT)


LITERT_HINT = (
    "Interpreter(model_content=tflite), allocate_tensors(), then for each image: set_tensor(input "
    "index, image[np.newaxis] as float32), invoke(), and keep get_tensor(output index)[0]; return "
    "an array of shape (n, classes)"
)


@feedback.checked("01", hint=LITERT_HINT)
def check_litert_predict(run_litert, tflite: bytes | None = None, model=None, x=None):
    """Check the learner's `run_litert(tflite, x) -> probabilities` against the Keras model it was
    converted from and against qlab's `Runtime.predict`.

    Args:
        run_litert: the learner's function: the .tflite bytes and float images -> (n, classes).
        tflite: a float32 .tflite (default: the baseline's, from the cache).
        model: the Keras model it came from (default: the baseline, from the cache).
        x: the images (default: the first 50 test images).
    Returns:
        the message for a right answer, with the largest difference from Keras.
    Raises:
        Wrong: the shape or the values differ (named slips: predicted classes instead of
            probabilities, a batch axis left in, every row the same).
        Unanswered: the function returns a placeholder.
    """
    config = fit.TrainConfig()
    if tflite is None:
        tflite = artifacts.quantized(config, "float32", progress=False)
    if model is None:
        model = artifacts.trained(config, progress=False)
    if x is None:
        x = data.load(config.dataset).x_test[:50]
    x = np.asarray(x, np.float32)
    keras_probs = model(x, training=False).numpy()
    got = np.asarray(feedback.answered(run_litert(tflite, x.copy())))
    if got.shape == keras_probs.shape[:1]:
        raise Wrong(
            "you returned one class per image; return the probabilities, shape "
            f"{keras_probs.shape}, and compare those with Keras.",
            LITERT_HINT,
        )
    if got.ndim == 3 and got.shape[1] == 1:
        raise Wrong(
            f"shape {got.shape}: each get_tensor() keeps the batch axis of 1; take [0] of it.",
            LITERT_HINT,
        )
    if got.shape == keras_probs.shape and len(got) > 1 and np.all(got == got[:1]):
        raise Wrong(
            "every row is the same: the output was read as a view that the next invoke overwrote; "
            "use get_tensor(), which copies.",
            LITERT_HINT,
        )
    qlab_probs = Runtime(tflite).predict(x)
    feedback.expect_close(
        got, qlab_probs, "your LiteRT probabilities", rtol=0, atol=1e-6, hint=LITERT_HINT
    )
    gap = float(np.abs(got - keras_probs).max())
    if gap > 1e-4:
        raise Wrong(
            f"LiteRT and Keras differ by up to {gap:.2e}; a float32 file should agree to float "
            "rounding: is this the file converted from this model?",
            LITERT_HINT,
        )
    return (
        f"your interpreter loop gives qlab's probabilities for all {len(x)} images; the largest "
        f"difference from Keras is {gap:.1e}."
    )
