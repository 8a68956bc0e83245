"""What pruning and clustering leave in a deployed file: per weight tensor, the fraction of zeros
(sparsity) and the number of distinct values, read from the `.tflite` itself.

A weight tensor is the weight input of an op of `qlab.vocabulary.WEIGHT_INPUTS`, followed through
the DEQUANTIZE of float16 weights; biases are left out. What is counted is what the file stores:
floats, or int8 integers. With one scale per output channel, the same real value lands on
different integers in different channels, so a kernel clustered to k values can hold more than k
int8 integers in all, never more than k in one channel (`unique_per_channel`). A zero is a weight
whose real value is exactly 0."""

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
    """Returns (op, tensor holding the weights' data) for every op with stored weights, in op
    order."""
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

    Returns a DataFrame, one row per op with weights: layer, op, type (stored: FLOAT32, FLOAT16,
    INT8), weights, sparsity (0..1), unique (distinct stored values), unique_per_channel (the
    most in one output channel), channels, scales (1, channels, or 0 for float), unique_real
    (distinct real values). Raises InvalidModelError or TypeError for a file that is not a
    readable .tflite."""
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
    """Returns the fraction of zeros over all the weights of a `weight_table` (NaN if empty)."""
    weights = table.weights.sum()
    return float((table.sparsity * table.weights).sum() / weights) if weights else float("nan")
