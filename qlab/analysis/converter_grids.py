"""The converter's choices for a whole model: the grid of every quantized tensor, predicted from the
float model and the calibration data alone, to be checked against the file's grids.

The rules, each checked tensor by tensor on every zoo model (`tests/test_zoo.py`):

- an activation gets `grid.activations` fitted to the range the float reference reaches on the
  calibration data (min/max calibration);
- the calibration reads an op's inputs after the op ran, and TFLite runs ADD, SUB and MUL in place
  over a first input no other op reads (of the output's shape): that input's range also covers the
  output (`INPLACE_OPS`);
- a recurrent model is calibrated with its state carried from one sample to the next;
- ops that move values share one grid between input and output (`SAME_GRID_OPS`), concatenation
  among all its inputs and its output (`SHARED_GRID_OPS`): the union of their ranges;
- some ops fix their output grid (`FIXED_OUTPUT_GRIDS`: softmax);
- weights get `grid.weights` (per channel where the file is; an LSTM's per tensor), biases input
  scale × weight scale (`grid.bias`);
- an LSTM's output state shares its output's grid, its cell state is int16 with a power-of-two scale
  (`cell_state_scale`);
- a QUANTIZE between int8 and uint8 (the uint8 I/O) shifts the zero point by 128."""

from __future__ import annotations

import numpy as np

from qlab.analysis import capture
from qlab.analysis.grid import Grid, activations, bias, weights
from qlab.intmath import float_ops
from qlab.vocabulary import (
    DATA_INPUT_FIRST,
    FIXED_OUTPUT_GRIDS,
    INPLACE_OPS,
    LSTM_INPUTS,
    SAME_GRID_OPS,
    SHARED_GRID_OPS,
    WEIGHT_INPUTS,
)


def converter_grids(pair, calibration: np.ndarray) -> dict[int, Grid]:
    """The grid qlab predicts for every quantized tensor of `pair.deployed` (a
    `qlab.analysis.capture.Pair`), from the `calibration` samples in the order the converter saw
    them.

    Returns {tensor index in the deployed file: predicted `Grid`} for the compute ops' quantized
    inputs and outputs, weights, biases and state, and the tensors across int8/uint8 QUANTIZE ops;
    tensors no rule reaches are absent.

    Raises ValueError for an empty calibration set, or samples of the wrong shape."""
    calibration = np.asarray(calibration, np.float32)
    if calibration.size == 0:
        raise ValueError(
            "the calibration set is empty: pass the samples the model was calibrated with"
        )
    deployed = pair.deployed
    recurrent = any(layer.op in ("UNIDIRECTIONAL_SEQUENCE_LSTM",) for layer in pair.layers)
    captured = capture.run(pair.float_tflite, calibration, carry_state=recurrent)
    ranges = _ranges(pair, captured)
    groups = _groups(pair, ranges)
    predicted: dict[int, Grid] = {}
    for index in ranges:
        t = deployed.tensors[index]
        if t.quantized:
            predicted[index] = activations(range=groups[index], bits=t.dtype.itemsize * 8)
    for layer in pair.layers:
        op = layer.deployed
        out = deployed.tensors[op.outputs[0]]
        key = (layer.op, out.dtype.itemsize * 8 if out.quantized else 0)
        if key in FIXED_OUTPUT_GRIDS:
            scale, zero_point = FIXED_OUTPUT_GRIDS[key]
            predicted[out.index] = Grid(key[1], np.array([scale]), np.array([zero_point]))
        if layer.op in DATA_INPUT_FIRST:
            _weights_and_bias(pair, layer, predicted)
        if layer.op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            _lstm(pair, layer, calibration, captured, predicted)
        if (
            layer.op in SAME_GRID_OPS
            and op.inputs[0] in predicted
            and out.quantized
            and (deployed.tensors[op.inputs[0]].dtype == out.dtype)
        ):
            predicted[out.index] = predicted[op.inputs[0]]  # a fixed grid (TANH, ...) carries on
    _quantize_shifts(deployed, predicted)
    return predicted


def _ranges(pair, captured: dict[int, np.ndarray]) -> dict[int, tuple[float, float]]:
    """The calibrated (min, max) of every deployed activation tensor the float_tflite computed,
    with the in-place rule applied."""
    ranges = {}
    for layer in pair.layers:
        ends = zip(
            layer.deployed.inputs + layer.deployed.outputs,
            layer.reference.inputs + layer.reference.outputs,
        )
        for index, reference_index in ends:
            if (
                index >= 0
                and reference_index in captured
                and pair.deployed.tensors[index].data is None
            ):
                values = captured[reference_index]
                ranges[index] = (float(values.min()), float(values.max()))
    _in_place(pair, ranges)
    return ranges


def _in_place(pair, ranges: dict) -> None:
    """Widen the range of an in-place op's first lone input (`INPLACE_OPS`) by its output's."""
    readers = {}
    for op in pair.reference.ops:
        for i in op.inputs:
            readers[i] = readers.get(i, 0) + 1
    graph_ends = set(pair.reference.inputs) | set(pair.reference.outputs)
    for layer in pair.layers:
        if layer.op not in INPLACE_OPS:
            continue
        out, reference_out = layer.deployed.outputs[0], layer.reference.outputs[0]
        for index, reference_index in zip(layer.deployed.inputs, layer.reference.inputs):
            source = pair.reference.tensors[reference_index]
            if (
                source.data is None
                and reference_index not in graph_ends
                and readers.get(reference_index) == 1
                and source.shape == pair.reference.tensors[reference_out].shape
                and index in ranges
            ):
                ranges[index] = (
                    min(ranges[index][0], ranges[out][0]),
                    max(ranges[index][1], ranges[out][1]),
                )
                break


def _groups(pair, ranges: dict) -> dict[int, tuple[float, float]]:
    """Each tensor's range after tying the tensors that share a grid: the union over its group."""
    parent = {index: index for index in ranges}

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for layer in pair.layers:
        op = layer.deployed
        if layer.op in SAME_GRID_OPS:
            tied = [op.inputs[0], op.outputs[0]]
        elif layer.op in SHARED_GRID_OPS:
            tied = [i for i in op.inputs if i >= 0] + [op.outputs[0]]
        else:
            continue
        tied = [i for i in tied if i in parent]
        for i in tied[1:]:
            parent[root(i)] = root(tied[0])
    union: dict[int, tuple[float, float]] = {}
    for index, (lo, hi) in ranges.items():
        r = root(index)
        union[r] = (min(lo, union[r][0]), max(hi, union[r][1])) if r in union else (lo, hi)
    return {index: union[root(index)] for index in ranges}


def _weights_and_bias(pair, layer, predicted: dict) -> None:
    op, reference_op = layer.deployed, layer.reference
    w_input, b_input = WEIGHT_INPUTS[layer.op]
    w = pair.deployed.tensors[op.inputs[w_input]]
    if not w.quantized:
        return
    w_grid = weights(
        pair.reference.tensors[reference_op.inputs[w_input]].data, w.dtype.itemsize * 8, axis=w.axis
    )
    predicted[w.index] = w_grid
    b_index = op.inputs[b_input] if len(op.inputs) > b_input else -1
    if b_index >= 0 and pair.deployed.tensors[b_index].quantized and op.inputs[0] in predicted:
        predicted[b_index] = bias(
            predicted[op.inputs[0]], w_grid, pair.deployed.tensors[b_index].dtype.itemsize * 8
        )


def _lstm(pair, layer, calibration, captured, predicted: dict) -> None:
    """An LSTM's weights (per tensor), gate biases, output state, cell state and the intermediate
    tensor on the output's grid."""
    op, deployed = layer.deployed, pair.deployed
    _lstm_weights_and_biases(pair, layer, predicted)
    out = op.outputs[0]
    output_state, cell_state = (op.inputs[i] for i in LSTM_INPUTS["states"])
    if out in predicted and deployed.tensors[output_state].quantized:
        predicted[output_state] = predicted[out]
    for index in _intermediates(pair, op):
        t = deployed.tensors[index]
        if t.quantized and t.name.startswith("effective_hidden_scale") and out in predicted:
            predicted[index] = predicted[out]
    if deployed.tensors[cell_state].quantized:
        reference_op = layer.reference
        inputs = [pair.reference.tensors[i].data if i >= 0 else None for i in reference_op.inputs]
        inputs[0] = captured[reference_op.inputs[0]]
        cells = float_ops.lstm_steps(
            reference_op, inputs[0].astype(np.float32), inputs, carry=True
        )[1]
        scale = cell_state_scale(float(np.abs(cells).max()))
        predicted[cell_state] = Grid(16, np.array([scale]), np.zeros(1, np.int64))


def _lstm_weights_and_biases(pair, layer, predicted: dict) -> None:
    op, reference_op, deployed = layer.deployed, layer.reference, pair.deployed
    gate_weights = {}
    for position in LSTM_INPUTS["weights"]:
        w = deployed.tensors[op.inputs[position]]
        if w.quantized:
            gate_weights[position] = predicted[w.index] = weights(
                pair.reference.tensors[reference_op.inputs[position]].data,
                w.dtype.itemsize * 8,
                axis=None,
            )
    source = op.inputs[0]
    for position in LSTM_INPUTS["biases"]:
        b = deployed.tensors[op.inputs[position]]
        if b.quantized and source in predicted and position - 11 in gate_weights:
            predicted[b.index] = bias(
                predicted[source], gate_weights[position - 11], b.dtype.itemsize * 8
            )


def cell_state_scale(reach: float) -> float:
    """Returns the int16 power-of-two scale the converter gives an LSTM's cell state that reached
    `reach` (max |c| over calibration): 2^ceil(log2 reach) / 2^15, or 2^-15 for a cell that
    stayed at 0 (tensorflow/lite/tools/optimize/quantization_utils.cc, the power-of-two rule for
    LSTM cell state)."""
    return float(2.0 ** np.ceil(np.log2(reach)) / 2**15) if reach > 0 else 2.0**-15


def _intermediates(pair, op) -> list[int]:
    raw = pair.deployed.raw.subgraphs[0].operators[op.index].intermediates
    return [int(i) for i in raw] if raw is not None else []


def _quantize_shifts(deployed, predicted: dict) -> None:
    """QUANTIZE between integer types only changes the zero point (int8 <-> uint8 I/O)."""
    for op in deployed.ops:
        if op.name != "QUANTIZE":
            continue
        src, dst = deployed.tensors[op.inputs[0]], deployed.tensors[op.outputs[0]]
        if src.quantized and dst.quantized:
            known, unknown = (src, dst) if src.index in predicted else (dst, src)
            if known.index in predicted and unknown.index not in predicted:
                g = predicted[known.index]
                shift = (1 << (g.bits - 1)) * (1 if known.dtype.kind == "i" else -1)
                predicted[unknown.index] = Grid(
                    g.bits,
                    g.scale,
                    g.zero_point + shift,
                    unknown.dtype.kind == "i",
                    g.narrow_range,
                    g.axis,
                )
