"""Solutions to the checked exercises of notebook 10 (pruning and clustering), with the slips the
checks name.

Hand this out after the session. `zeros_and_values` reads each weight tensor from the `.tflite` as
qlab.analysis.weights.weight_table does (sparsity of the real values, distinct stored integers), and
`sparsity_at` is tfmot's PolynomialDecay schedule, the one qlab.training.pruning.prune uses.
"""

import numpy as np

from qlab.tflite import flatbuffer

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def zeros_and_values(tflite):
    """(fraction of zero weights, distinct stored values) of each op's weight tensor, op by op."""
    file = flatbuffer.read(tflite)
    pairs = []
    for op in file.ops:
        if op.name in WEIGHT_OPS:
            t = file.tensors[op.inputs[1]]
            pairs.append((float(np.mean(t.dequantize(t.data) == 0)), int(np.unique(t.data).size)))
    return pairs


def sparsity_at(step, initial, final, begin, end, power=3):
    """tfmot's PolynomialDecay: fast at first, levelling off at `final`."""
    p = min(max((step - begin) / (end - begin), 0.0), 1.0)
    return final + (initial - final) * (1 - p) ** power


# -- typical slips ---------------------------------------------------------------------------------
def zeros_and_values_density(tflite):
    return [(1 - s, u) for s, u in zeros_and_values(tflite)]


def zeros_and_values_with_biases(tflite):
    file = flatbuffer.read(tflite)
    pairs = []
    for op in file.ops:
        if op.name in WEIGHT_OPS:
            for index in op.inputs[1:3]:
                t = file.tensors[index]
                pairs.append((float(np.mean(t.data == 0)), int(np.unique(t.data).size)))
    return pairs


def zeros_and_values_real(tflite):
    file = flatbuffer.read(tflite)
    pairs = []
    for op in file.ops:
        if op.name in WEIGHT_OPS:
            t = file.tensors[op.inputs[1]]
            real = t.dequantize(t.data)
            pairs.append((float(np.mean(real == 0)), int(np.unique(real).size)))
    return pairs


def sparsity_at_linear(step, initial, final, begin, end, power=3):
    p = min(max((step - begin) / (end - begin), 0.0), 1.0)
    return initial + (final - initial) * p


def sparsity_at_unclipped(step, initial, final, begin, end, power=3):
    return final + (initial - final) * (1 - (step - begin) / (end - begin)) ** power


SOLUTIONS = {"check_zeros_and_values": zeros_and_values, "check_polynomial_sparsity": sparsity_at}
MISTAKES = {
    "check_zeros_and_values": [
        zeros_and_values_density,
        zeros_and_values_with_biases,
        zeros_and_values_real,
    ],
    "check_polynomial_sparsity": [sparsity_at_linear, sparsity_at_unclipped],
}
