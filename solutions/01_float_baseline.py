"""Solutions to the checked exercises of notebook 01 (the float baseline), with the slips the checks
name.

Hand this out after the session. The LiteRT loop is the article's own evaluation loop, written out.
"""

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from qlab.training import data, fit


def layer_params(kernel_shape):
    """A conv or dense layer's parameters: every kernel value, plus one bias per output channel."""
    return int(np.prod(kernel_shape)) + int(kernel_shape[-1])


def run_litert(tflite, x):
    """Run the images through LiteRT's interpreter, one invoke each: (n, classes) probabilities."""
    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    probs = []
    for image in np.asarray(x, np.float32):
        interpreter.set_tensor(inp, image[np.newaxis])
        interpreter.invoke()
        probs.append(interpreter.get_tensor(out)[0])
    return np.array(probs)


digits = data.load(fit.TrainConfig().dataset)
image_step = 100 / len(digits.y_test)  # percentage points of test accuracy per image


# -- typical slips ---------------------------------------------------------------------------------
def layer_params_without_bias(kernel_shape):
    return int(np.prod(kernel_shape))


def layer_params_bias_per_input(kernel_shape):
    return int(np.prod(kernel_shape)) + int(kernel_shape[-2])


def run_litert_classes(tflite, x):
    return run_litert(tflite, x).argmax(axis=1)


def run_litert_keeps_batch_axis(tflite, x):
    return run_litert(tflite, x)[:, np.newaxis, :]


SOLUTIONS = {
    "check_layer_params": layer_params,
    "check_image_step": image_step,
    "check_litert_predict": run_litert,
}
MISTAKES = {
    "check_layer_params": [layer_params_without_bias, layer_params_bias_per_input],
    "check_image_step": [1 / len(digits.y_test), 100 / len(digits.y_train)],
    "check_litert_predict": [run_litert_classes, run_litert_keeps_batch_axis],
}
