"""Solutions to the checked exercises of notebook 02 (post-training modes), with the slips the
checks name.

Hand this out after the session. The weight bytes are counted from the Keras model: kernels and
biases apart, because the int8 modes keep biases in int32.
"""

import numpy as np

from qlab import arith
from qlab.conversion import modes
from qlab.training import fit, models


def to_model_input(rt, x):
    """Float images to the int8 codes the model's input tensor expects, on that tensor's grid."""
    scale, zero_point = rt.input["quantization"]
    q = arith.round_half_away(np.asarray(x, np.float64) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def predicted_weight_bytes(model):
    """{mode: weight and bias bytes}: float32 4 bytes each, float16 2, int8 1 (int32 biases: 4)."""
    layers = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    kernels = sum(int(np.prod(layer.kernel.shape)) for layer in layers)
    biases = sum(int(np.prod(layer.bias.shape)) for layer in layers)
    return {
        "float32": 4 * (kernels + biases),
        "float16": 2 * (kernels + biases),
        "integer_only": kernels + 4 * biases,
    }


needs_calibration = {name for name, mode in modes.MODES.items() if mode.needs_calibration}


# -- typical slips ---------------------------------------------------------------------------------
def raw_pixels(rt, x):
    return np.asarray(x).astype(np.int8)


def with_output_grid(rt, x):
    scale, zero_point = rt.output["quantization"]
    q = arith.round_half_away(np.asarray(x, np.float64) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


_model = models.build(fit.TrainConfig().model)
_bytes = predicted_weight_bytes(_model)
_params = _model.count_params()

SOLUTIONS = {
    "check_input_quantization": to_model_input,
    "check_weight_bytes": _bytes,
    "check_needs_calibration": needs_calibration,
}
MISTAKES = {
    "check_input_quantization": [raw_pixels, with_output_grid],
    "check_weight_bytes": [{**_bytes, "integer_only": _params}, {**_bytes, "float16": 4 * _params}],
    "check_needs_calibration": [
        needs_calibration | {"dynamic_range"},
        needs_calibration - {"int16x8"},
    ],
}
