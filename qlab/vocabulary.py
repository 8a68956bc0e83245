"""qlab's one vocabulary: the names every module uses for op kinds, kernel choices and trainings.

Constants only; this module imports nothing. Op names are the TFLite schema's `BuiltinOperator`
names, as `qlab.tflite_file` reads them from a `.tflite` (CONV_2D, FULLY_CONNECTED, ...). Mode
names live in `qlab.modes`, the one table of post-training modes.
"""

# -- ops, as a .tflite names them ----------------------------------------------------------------
EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")
"""Ops quantization adds at a model's edges and around ops kept in float; every other op computes."""

WEIGHT_INPUTS = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
}
"""Ops with a weight tensor: op -> (input index of the weights, input index of the bias).

Source: the operator definitions of the TFLite schema (`tensorflow/compiler/mlir/lite/schema/
schema.fbs`) and the kernels' input layout (`tflite/kernels/conv.cc`, `depthwise_conv.cc`,
`fully_connected.cc`, `transpose_conv.cc`)."""

WEIGHTED_OPS = tuple(WEIGHT_INPUTS)
"""The ops that carry weights (and so a weight grid, MACs, and weight bytes)."""

DATA_INPUT_FIRST = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
"""Weighted ops whose activation input is input 0 (TRANSPOSE_CONV's is input 2)."""

OUTPUT_CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0}
"""The axis of each weighted op's weights that holds its output channels: where the converter
puts per-axis scales (`quantized_dimension`). Depthwise filters are (1, kh, kw, channels)."""

SAME_GRID_OPS = ("RESHAPE",)
"""Ops that move values without changing them: the converter gives the output its input's grid."""

FIXED_OUTPUT_GRIDS = {("SOFTMAX", 8): (1 / 256, -128), ("SOFTMAX", 16): (1 / 32768, 0)}
"""Ops whose kernel fixes the output grid whatever the data: (op, bits) -> (scale, zero_point).
Source: `tflite/kernels/activations.cc`, SoftmaxPrepare (int8: 1/256 and -128; int16: 1/32768, 0)."""

FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")
"""The fused activations a conv or fully connected op can carry (schema `ActivationFunctionType`)."""

# -- kernels: whose arithmetic runs a .tflite ---------------------------------------------------
KERNELS = {
    "xnnpack": "LiteRT's builtin kernels with the default XNNPACK delegate (what the interpreter "
               "uses unless told otherwise)",
    "builtin": "LiteRT's optimized builtin kernels (ruy, gemmlowp), no delegate",
    "reference": "TFLite's reference kernels: slow, simple, for checking",
}
"""The kernel choices, by the name qlab uses everywhere (runtime, integer engine, bench)."""

# -- how a Keras model was trained ------------------------------------------------------------
TRAININGS = ("float", "qat")
"""`float`: ordinary training. `qat`: quantization-aware training (tfmot fake-quant)."""
