"""What pruning and clustering leave in a deployed file: per weight tensor, the fraction of zeros
(sparsity) and the number of distinct values, read from the `.tflite` itself.

A weight tensor is the weight input of an op of `qlab.vocabulary.WEIGHT_INPUTS` (CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV), followed through the DEQUANTIZE that float16
weights pass; biases are left out (tfmot neither prunes nor clusters them). Rows are named after
the Keras layers (`qlab.tflite.naming.labels`).

What is counted is what the file stores: float values in a float32 or float16 file, int8 integers in
an int8 file. With one scale per output channel (the converter's default for conv and fully
connected weights), the same real value lands on different integers in different channels, so a
kernel clustered to k values can hold more than k distinct int8 integers in all, and never more
than k in any one channel: `unique_per_channel` counts those. A zero is a weight whose real value
(`Tensor.dequantize`) is exactly 0, the integer of the zero point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.tflite import flatbuffer, naming
from qlab.vocabulary import OUTPUT_CHANNEL_AXIS, WEIGHT_INPUTS

COLUMNS = (
    "layer",
    "op",
    "type",
    "weights",
    "sparsity",
    "unique",
    "unique_per_channel",
    "channels",
    "scales",
    "unique_real",
)


def weight_tensors(model: flatbuffer.ModelFile) -> list[tuple[flatbuffer.Op, flatbuffer.Tensor]]:
    """The weight tensor of every op with weights, where its data is stored in the file.

    Returns:
        (op, tensor holding the weights' data) pairs in op order; a weight input computed at run
        time (no data: e.g. a dynamic weight) is left out.
    """
    producer = {out: op for op in model.ops for out in op.outputs}
    found = []
    for op in model.ops:
        if op.name not in WEIGHT_INPUTS:
            continue
        index = op.inputs[WEIGHT_INPUTS[op.name][0]]
        while index in producer and producer[index].name == "DEQUANTIZE":  # float16 weights
            index = producer[index].inputs[0]
        tensor = model.tensors[index]
        if tensor.data is not None:
            found.append((op, tensor))
    return found


def weight_table(tflite: bytes, keras_model=None) -> pd.DataFrame:
    """Sparsity and distinct values of every weight tensor of a `.tflite`.

    Args:
        keras_model: the Keras model the file was converted from, if at hand, for layer names
            (`qlab.tflite.naming.labels`).

    Returns:
        one row per op with weights, in op order: layer, op, type (the stored type: FLOAT32,
        FLOAT16, INT8), weights (count), sparsity (fraction of weights whose real value is exactly
        0, in [0, 1]), unique (distinct stored values in the whole tensor: floats, or int8
        integers for an int8 tensor), unique_per_channel (the most distinct stored values any
        output channel holds), channels (output channels, `OUTPUT_CHANNEL_AXIS`), scales (1: one
        scale per tensor, channels: one per channel, 0: float), unique_real (distinct real values,
        dequantized: for float tensors, equal to unique).

    Raises:
        InvalidModelError, TypeError: not a readable .tflite.
    """
    model = flatbuffer.read(tflite)
    labels = naming.labels(model, keras_model)
    rows = []
    for op, tensor in weight_tensors(model):
        stored = np.asarray(tensor.data)
        real = tensor.dequantize(stored)
        axis = OUTPUT_CHANNEL_AXIS[op.name]
        channels = np.moveaxis(stored, axis, 0).reshape(stored.shape[axis], -1)
        rows.append(
            {
                "layer": labels.get(op.index, op.name.lower()),
                "op": op.name,
                "type": tensor.type,
                "weights": int(stored.size),
                "sparsity": float(np.mean(real == 0)),
                "unique": int(len(np.unique(stored))),
                "unique_per_channel": int(max(len(np.unique(c)) for c in channels)),
                "channels": int(stored.shape[axis]),
                "scales": int(tensor.scale.size),
                "unique_real": int(len(np.unique(real))),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def total_sparsity(table: pd.DataFrame) -> float:
    """The fraction of zeros over all the weights of a `weight_table`.

    Returns:
        zeros / weights over every row, in [0, 1] (NaN for an empty table).
    """
    weights = table.weights.sum()
    return float((table.sparsity * table.weights).sum() / weights) if weights else float("nan")
