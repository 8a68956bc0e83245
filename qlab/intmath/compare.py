"""Where two runs of the same integer model differ, op by op, in LSB (integer steps).

The runs come from the engine (`run_integer`, `run_float_shortcut`) or from LiteRT itself
(`qlab.intmath.litert.run_litert`). NumPy and pandas only: no runtime.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.intmath.engine import IntegerModel, IntegerRun


def compare(tflite: bytes, a: IntegerRun, b: IntegerRun):
    """One row per op: how many of its output values differ between two runs, and by how many LSB.

    Args:
        tflite: the model both runs computed (its ops give the rows).
        a, b: two runs of it, e.g. `run_integer` and `run_litert`.

    Returns:
        DataFrame, one row per op: op (name), layer, tensor (index), values (count),
        different (count) and max_lsb (the largest difference, in LSB: integer steps).

    Raises:
        KeyError: a run lacks an op's output tensor.
        IntegerModelError: a model the engine cannot run.
    """
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
