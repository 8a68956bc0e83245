"""qlab's one vocabulary: the names every module uses for op kinds, kernel choices and trainings.

Constants only; this module imports nothing. Op names are the TFLite schema's `BuiltinOperator`
names, as `qlab.tflite.flatbuffer` reads them from a `.tflite` (CONV_2D, FULLY_CONNECTED, ...). Mode
names live in `qlab.conversion.modes`, the one table of post-training modes.
"""

# -- ops, as a .tflite names them ----------------------------------------------------------------
EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")
"""Ops quantization adds at a model's edges and around ops kept in float; every other op
computes."""

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

OUTPUT_CHANNEL_AXIS = {
    "CONV_2D": 0,
    "DEPTHWISE_CONV_2D": 3,
    "FULLY_CONNECTED": 0,
    "TRANSPOSE_CONV": 0,
}
"""The axis of each weighted op's weights that holds its output channels: where the converter
puts per-axis scales (`quantized_dimension`). Depthwise filters are (1, kh, kw, channels)."""

RECURRENT_OPS = (
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "LSTM",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "RNN",
)
"""Ops that carry state over time steps: what a Keras LSTM, GRU or RNN layer converts to."""

LSTM_INPUTS = {
    "weights": tuple(range(1, 9)),  # input-to-{input, forget, cell, output}, recurrent-to-{...}
    "peephole": (9, 10, 11),  # cell-to-{input, forget, output}
    "biases": (12, 13, 14, 15),  # {input, forget, cell, output} gate biases
    "projection": (16, 17),  # projection weights and bias
    "states": (18, 19),  # output state and cell state: variable tensors, carried between invokes
    "layer_norm": (20, 21, 22, 23),
}
"""The inputs of UNIDIRECTIONAL_SEQUENCE_LSTM by role (input 0 is the sequence). Source: the tensor
indices in tflite/kernels/lstm_shared.h (kInputToInputWeightsTensor = 1, ...,
kOutputLayerNormCoefficientsTensor = 23)."""

LSTM_WEIGHT_NAMES = (
    "input_to_input",
    "input_to_forget",
    "input_to_cell",
    "input_to_output",
    "recurrent_to_input",
    "recurrent_to_forget",
    "recurrent_to_cell",
    "recurrent_to_output",
)
"""The eight gate weight matrices of an LSTM, in the order of `LSTM_INPUTS["weights"]`."""

SAME_GRID_OPS = (
    "RESHAPE",
    "SQUEEZE",
    "STRIDED_SLICE",
    "MAX_POOL_2D",
    "AVERAGE_POOL_2D",
    "REDUCE_MAX",
)
"""Ops whose int8 output the converter puts on the grid of their (first) input, and the input on
the output's: values are moved, picked or averaged, never rescaled."""

SHARED_GRID_OPS = ("CONCATENATION",)
"""Ops whose inputs and output all share one grid (fitted to the output's range)."""

INPLACE_OPS = ("ADD", "SUB", "MUL")
"""Element-wise ops TFLite may run in place, writing the output over one of its inputs."""

FIXED_OUTPUT_GRIDS = {
    ("SOFTMAX", 8): (1 / 256, -128),
    ("SOFTMAX", 16): (1 / 32768, 0),
    ("LOGISTIC", 8): (1 / 256, -128),
    ("LOGISTIC", 16): (1 / 32768, 0),
    ("TANH", 8): (1 / 128, 0),
    ("TANH", 16): (1 / 32768, 0),
}
"""Ops whose output grid is fixed whatever the data: (op, bits) -> (scale, zero_point).
Sources: `tflite/kernels/activations.cc` (SoftmaxPrepare, SigmoidPrepare, TanhPrepare) and the
quantizer's `restricted_value_int8/int16` in
`tensorflow/lite/tools/optimize/operator_property.cc`."""

FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")
"""The fused activations a conv or fully connected op can carry (schema
`ActivationFunctionType`)."""

# -- kernels: whose arithmetic runs a .tflite ---------------------------------------------------
KERNELS = {
    "xnnpack": "LiteRT's builtin kernels with the default XNNPACK delegate (what the interpreter "
    "uses unless told otherwise)",
    "builtin": "LiteRT's optimized builtin kernels (ruy, gemmlowp), no delegate",
    "reference": "TFLite's reference kernels: slow, simple, for checking",
}
"""The kernel choices, by the name qlab uses everywhere (runtime, integer engine, bench)."""

VERDICTS = {
    "same": "within 5 % of it in every round",
    "faster": "faster in every round",
    "slower": "slower in every round",
    "mixed": "mixed: faster in some rounds, slower in others",
}
"""What interleaved timing rounds let one say of a model against its baseline, as words for a
printed line: each answer of `qlab.perf.bench.verdict`."""

# -- how a Keras model was trained ------------------------------------------------------------
TRAININGS = ("float", "qat")
"""`float`: ordinary training. `qat`: quantization-aware training (tfmot fake-quant)."""
