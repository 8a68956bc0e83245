"""Where two runs of the same integer model differ, op by op, in LSB (integer steps): runs of the
engine or of LiteRT itself (`qlab.intmath.litert.run_litert`). NumPy and pandas only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.intmath.engine import IntegerModel, IntegerRun


def compare(tflite: bytes, a: IntegerRun, b: IntegerRun):
    """Returns a DataFrame, one row per op of `tflite`: op (name), layer, tensor (index), values,
    different (count) and max_lsb (the largest difference between runs `a` and `b`).

    Raises:
        KeyError: a run lacks an op's output tensor.
        IntegerModelError: a model the engine cannot run."""
    rows = []
    for step in IntegerModel(tflite).steps:
        i = step.output.index
        diff = np.abs(a.tensors[i].astype(np.int64) - b.tensors[i].astype(np.int64))
        rows.append(
            {
                "op": step.op.name,
                "layer": step.layer,
                "tensor": i,
                "values": diff.size,
                "different": int(np.count_nonzero(diff)),
                "max_lsb": int(diff.max(initial=0)),
            }
        )
    return pd.DataFrame(rows)
