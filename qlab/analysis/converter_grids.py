"""The converter's choices for a whole model: the grid of every quantized tensor, predicted from
the float model and the calibration data alone, to be checked against the grids the file holds.

The rules: activations get `grid.activations` fitted to the range the float twin reaches on the
calibration data; weights get `grid.weights` (per channel, along the axis the file quantizes);
biases get scale input scale x weight scale (`grid.bias`); some ops fix their output grid
(`qlab.vocabulary.FIXED_OUTPUT_GRIDS`, set by the kernels) or share their input's
(`SAME_GRID_OPS`); and a QUANTIZE between int8 and uint8 (the converter's uint8 input and
output) keeps the scale and shifts the zero point by 128.
"""

from __future__ import annotations

import numpy as np

from qlab.analysis import capture
from qlab.analysis.grid import Grid, activations, bias, weights
from qlab.vocabulary import DATA_INPUT_FIRST, FIXED_OUTPUT_GRIDS, SAME_GRID_OPS, WEIGHT_INPUTS


def converter_grids(pair, calibration: np.ndarray) -> dict[int, Grid]:
    """The grid qlab predicts for every quantized tensor of `pair.deployed`, by tensor index.

    Weights come from the float twin's constants and activation ranges from running the float
    twin on `calibration`, the data the converter calibrated with; each grid is then chosen by
    the rules above. Comparing these with `grid.of_tensor` checks that qlab's grids are the
    converter's.

    Args:
        pair: a `qlab.analysis.capture.Pair` (the deployed model and its float twin).
        calibration: the calibration (representative) dataset the converter used, float
            samples (n,) + the input's sample shape; an activation's range is its min and max
            over all of them (the converter's min/max calibration).

    Returns:
        dict {tensor index in the deployed file: the predicted `Grid`} (float64 scales holding
        float32 values, int64 zero points): the quantized inputs and outputs of the compute ops,
        their weights and biases, and the tensors across int8/uint8 QUANTIZE ops. Quantized
        tensors no rule reaches are absent.

    Raises:
        ValueError: an empty calibration set, or samples of the wrong shape (`capture.run`).
    """
    calibration = np.asarray(calibration, np.float32)
    if calibration.size == 0:
        raise ValueError("the calibration set is empty: pass the samples the model was calibrated with")
    captured = capture.run(pair.twin_tflite, calibration)
    deployed, twin = pair.deployed, pair.twin
    predicted: dict[int, Grid] = {}

    def activation(index: int, twin_index: int) -> None:  # the grid of the twin tensor's range
        t = deployed.tensors[index]
        if t.quantized and index not in predicted:
            values = captured[twin_index]
            bits = t.dtype.itemsize * 8
            predicted[index] = activations(range=(values.min(), values.max()), bits=bits)

    for layer in pair.layers:
        op, twin_op = layer.deployed, layer.twin
        activation(op.inputs[0], twin_op.inputs[0])
        out = deployed.tensors[op.outputs[0]]
        if out.quantized:
            bits = out.dtype.itemsize * 8
            if (layer.op, bits) in FIXED_OUTPUT_GRIDS:
                scale, zero_point = FIXED_OUTPUT_GRIDS[(layer.op, bits)]
                predicted[out.index] = Grid(bits, np.array([scale]), np.array([zero_point]))
            elif layer.op in SAME_GRID_OPS and op.inputs[0] in predicted:
                predicted[out.index] = predicted[op.inputs[0]]
            else:
                activation(out.index, twin_op.outputs[0])
        if layer.op in DATA_INPUT_FIRST:
            w_input, b_input = WEIGHT_INPUTS[layer.op]
            w = deployed.tensors[op.inputs[w_input]]
            if w.quantized:
                w_grid = weights(twin.tensors[twin_op.inputs[w_input]].data, w.dtype.itemsize * 8, axis=w.axis)
                predicted[w.index] = w_grid
                b_index = op.inputs[b_input] if len(op.inputs) > b_input else -1
                if b_index >= 0 and deployed.tensors[b_index].quantized and op.inputs[0] in predicted:
                    b = deployed.tensors[b_index]
                    predicted[b_index] = bias(predicted[op.inputs[0]], w_grid, b.dtype.itemsize * 8)
    for op in deployed.ops:  # QUANTIZE between integer types only changes the zero point
        if op.name != "QUANTIZE":
            continue
        src, dst = (deployed.tensors[op.inputs[0]], deployed.tensors[op.outputs[0]])
        if src.quantized and dst.quantized:
            known, unknown = (src, dst) if src.index in predicted else (dst, src)
            if known.index in predicted and unknown.index not in predicted:
                g = predicted[known.index]
                shift = (1 << (g.bits - 1)) * (1 if known.dtype.kind == "i" else -1)
                predicted[unknown.index] = Grid(g.bits, g.scale, g.zero_point + shift,
                                                unknown.dtype.kind == "i", g.narrow_range, g.axis)
    return predicted
