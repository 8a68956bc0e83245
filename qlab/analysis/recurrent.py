"""The fused LSTM op of a .tflite, read from the file: every tensor it takes, keeps between invokes
and uses inside, by the runtime's role names, with type, scale and zero point; the integer kernel's
arithmetic step by step (8 bits for the matrix products, 16 inside the cell); and how the deployed
LSTM's error grows from one time step to the next.

Sources, all TensorFlow Lite:

- roles: the input positions of tflite/kernels/lstm_shared.h (kInputTensor = 0, ...,
  kOutputLayerNormCoefficientsTensor = 23; 18 and 19, the variable output and cell state, are
  kOutputStateTensor and kCellStateTensor, kInputActivationStateTensor and kInputCellStateTensor in
  some releases), and the five intermediates in the order the flatbuffer exporter writes them
  (tensorflow/compiler/mlir/lite/flatbuffer_export.cc);
- the types the integer kernel requires (`INTEGER_KERNEL`): unidirectional_sequence_lstm.cc,
  CheckInputTensorDimensions and PopulateQuantizedLstmParams8x8_16 (a power-of-two cell-state scale,
  CheckedLog2; the gate intermediates read only with layer normalization, otherwise the gate
  pre-activations are Q3.12);
- the arithmetic (`lstm_arithmetic`): lstm_eval.cc, CalculateLstmGateInteger8x8_16,
  UpdateLstmCellInteger and CalculateLstmOutputInteger8x8_16."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab.analysis import capture, per_layer
from qlab.tflite import flatbuffer, naming
from qlab.vocabulary import LSTM_INPUTS, RECURRENT_OPS

FUSED_LSTM_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM")
"""Ops with the 24-input layout of lstm_shared.h (the full LSTM kernel and its sequence form)."""

_GATES = ("input", "forget", "cell", "output")
ROLES = (
    "input",
    *(f"input_to_{g}_weights" for g in _GATES),
    *(f"recurrent_to_{g}_weights" for g in _GATES),
    *(f"cell_to_{g}_weights" for g in _GATES if g != "cell"),
    *(f"{g}_gate_bias" for g in _GATES),
    "projection_weights",
    "projection_bias",
    "output_state",
    "cell_state",
    *(f"{g}_layer_norm_coefficients" for g in _GATES),
)
"""The op's inputs by position, lstm_shared.h's names without the k...Tensor around them."""

INTERMEDIATES = (
    "input_to_input_intermediate",
    "input_to_forget_intermediate",
    "input_to_cell_intermediate",
    "input_to_output_intermediate",
    "effective_hidden_scale_intermediate",
)
"""The op's intermediate tensors, in the order the kernel reads them (GetIntermediates 0..4)."""

KINDS = {
    0: "input",
    **{
        p: {"biases": "bias", "states": "state"}.get(kind, kind)
        for kind, places in LSTM_INPUTS.items()
        for p in places
    },
}
"""Input position -> kind of tensor: input, weights, peephole, bias, projection, state,
layer_norm."""

INTEGER_KERNEL = {
    "input": "int8",
    "weights": "int8",
    "peephole": "int16",
    "bias": "int32",
    "projection_weights": "int8",
    "projection_bias": "int32",
    "output_state": "int8",
    "cell_state": "int16",
    "layer_norm": "int16",
    "gate_intermediate": "int16",
    "effective_hidden_scale_intermediate": "int8",
    "output": "int8",
}
"""The type each tensor has in an integer (8x8_16) LSTM, as the kernel checks or reads it (sources
above)."""

Q3_12, Q0_15 = 2.0**-12, 2.0**-15
"""The kernel's fixed grids: gate pre-activations without layer normalization, and what the sigmoid
and tanh of the integer kernel return (int16, zero point 0)."""

CELL_LOG2_SCALES = range(-15, -8)
"""The cell-state scales 2^k the integer kernel computes tanh(c) from: it calls ApplyTanh with
15 + k integer bits (CalculateLstmOutputInteger8x8_16), which dispatches 0 to 6 and otherwise
returns without writing its output (tensor_utils, ApplyTanh/PortableApplyTanh): outside this range
tanh(c), and so the hidden state, is whatever the scratch buffer held. The converter picks
k = ceil(log2 max|c|) - 15, so a cell state that never reaches 0.5 in calibration gets k = -16."""

COLUMNS = (
    "layer",
    "op",
    "kernel",
    "kind",
    "role",
    "position",
    "tensor",
    "name",
    "dtype",
    "bits",
    "shape",
    "scale",
    "zero_point",
    "scales",
    "variable",
    "constant",
    "integer_kernel",
    "note",
)


def lstm_ops(model: flatbuffer.ModelFile) -> list[flatbuffer.Op]:
    """Returns the fused LSTM ops (`FUSED_LSTM_OPS`) of a parsed file, in file order. Raises
    ValueError if there is none, naming the recurrent ops it has instead and how to get a fused
    LSTM."""
    found = [op for op in model.ops if op.name in FUSED_LSTM_OPS]
    if found:
        return found
    other = sorted({op.name for op in model.ops if op.name in RECURRENT_OPS})
    has = (
        f"its recurrent ops ({', '.join(other)}) have another layout"
        if other
        else f"its ops are {', '.join(sorted({op.name for op in model.ops}))}"
    )
    raise ValueError(
        f"this .tflite has no fused LSTM op ({' or '.join(FUSED_LSTM_OPS)}): {has}. "
        "A Keras LSTM layer converts to one when the model has a fixed batch size "
        "(qlab.artifacts.convertible)"
    )


def kernel_of(model: flatbuffer.ModelFile, op: flatbuffer.Op) -> str:
    """Returns which of the LSTM kernel's paths runs `op`, from its input and weight types
    (unidirectional_sequence_lstm.cc, Eval): "integer 8x8_16" (int8 input, int16 cell state),
    "integer 8x8_8", "hybrid" (int8 weights, float activations) or "float"."""
    source = model.tensors[op.inputs[0]].type
    weights = model.tensors[op.inputs[LSTM_INPUTS["weights"][-1]]].type
    if source == "INT8":
        cell = model.tensors[op.inputs[LSTM_INPUTS["states"][1]]].type
        return "integer 8x8_16" if cell == "INT16" else "integer 8x8_8"
    return "hybrid" if weights in ("INT8", "UINT8") else "float"


def lstm_tensors(tflite: bytes, keras_model=None) -> pd.DataFrame:
    """Every tensor of every fused LSTM op of a .tflite, by role: its 24 inputs, its intermediates
    and its output.

    Returns a DataFrame, one row per (op, tensor slot), `COLUMNS`: kernel (`kernel_of`), kind, role
    (`ROLES`, `INTERMEDIATES`, "output"), position, tensor (-1 if absent), dtype, bits, shape, scale
    (the first if per-axis; NaN if not quantized), zero_point, scales (how many), variable (kept
    between invokes), constant, integer_kernel (the type an integer LSTM has there), note.

    Raises:
        ValueError: no fused LSTM op in the file (`lstm_ops`).
        qlab.tflite.flatbuffer.InvalidModelError: bytes that are not a .tflite."""
    model = flatbuffer.read(tflite)
    ops = lstm_ops(model)
    names = naming.layer_names(model, keras_model)
    rows = []
    for op in ops:
        raw = model.raw.subgraphs[0].operators[op.index]
        intermediates = [int(i) for i in raw.intermediates] if raw.intermediates is not None else []
        slots = [
            (KINDS.get(p, "input"), ROLES[p], p, i) for p, i in enumerate(op.inputs[: len(ROLES)])
        ]
        slots += [
            ("intermediate", INTERMEDIATES[p], p, i)
            for p, i in enumerate(intermediates[: len(INTERMEDIATES)])
        ]
        slots += [("output", "output", 0, op.outputs[0])]
        context = {
            "layer": names.get(op.index, op.name.lower()),
            "op": op.index,
            "kernel": kernel_of(model, op),
        }
        rows += [
            {
                **context,
                **_tensor_fields(model, index),
                "kind": kind,
                "role": role,
                "position": position,
                "integer_kernel": _integer_type(kind, role),
                "note": _note(model, op, kind, role, index),
            }
            for kind, role, position, index in slots
        ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _tensor_fields(model: flatbuffer.ModelFile, index: int) -> dict:
    if index < 0:
        return {
            "tensor": -1,
            "name": "",
            "dtype": "",
            "bits": np.nan,
            "shape": (),
            "scale": np.nan,
            "zero_point": np.nan,
            "scales": 0,
            "variable": False,
            "constant": False,
        }
    t = model.tensors[index]
    return {
        "tensor": index,
        "name": t.name,
        "dtype": t.type.lower(),
        "shape": t.shape,
        "bits": t.dtype.itemsize * 8 if t.dtype else np.nan,
        "scale": float(t.scale[0]) if t.quantized else np.nan,
        "zero_point": int(t.zero_point[0]) if t.quantized else np.nan,
        "scales": int(t.scale.size),
        "variable": bool(model.raw.subgraphs[0].tensors[index].isVariable),
        "constant": t.data is not None,
    }


def _integer_type(kind: str, role: str) -> str:
    if kind == "intermediate":
        return INTEGER_KERNEL.get(role, INTEGER_KERNEL["gate_intermediate"])
    return INTEGER_KERNEL[role if kind in ("projection", "state") else kind]


_ABSENT = {
    "peephole": "this LSTM has no peephole connections",
    "projection": "this LSTM has no projection",
    "layer_norm": "this LSTM has no layer normalization",
    "weights": "no input gate: a CIFG LSTM",
    "bias": "no input gate: a CIFG LSTM",
}


def _note(model, op, kind: str, role: str, index: int) -> str:
    """What a reader needs beside a row's numbers: why it is absent or unread, and its rules."""
    if index < 0:
        return f"absent: {_ABSENT.get(kind, 'optional input')}"
    t = model.tensors[index]
    layer_norm = op.inputs[LSTM_INPUTS["layer_norm"][1]] >= 0
    if kind == "intermediate" and role != INTERMEDIATES[4] and not layer_norm:
        return (
            "not read: without layer normalization the gate pre-activations are Q3.12 "
            "(int16, scale 2^-12)"
        )
    if not t.quantized:
        return ""
    if role == INTERMEDIATES[4]:
        return (
            "the grid of the hidden state o*tanh(c); without projection it is copied to the "
            "output state"
        )
    if role == "cell_state":
        return _cell_state_note(op, t)
    if kind == "bias":
        return _bias_note(model, op, role, t)
    if role == "output_state":
        out = model.tensors[op.outputs[0]]
        same = out.quantized and out.scale[0] == t.scale[0] and out.zero_point[0] == t.zero_point[0]
        return "on the output's grid" if same else "not on the output's grid"
    return ""


def _cell_state_note(op, t) -> str:
    k, clip = np.log2(float(t.scale[0])), op.option("cellClip", 0.0)
    if k != np.round(k):
        return "scale not a power of two: the integer kernel refuses it"
    broken = (
        ""
        if k in CELL_LOG2_SCALES
        else (
            f"; OUTSIDE 2^-15..2^-9: the kernel's tanh of the cell gets "
            f"{15 + int(k)} integer bits, which it does not compute "
            "(CELL_LOG2_SCALES), so the hidden state is garbage"
        )
    )
    return (
        f"power-of-two scale 2^{int(k)}"
        + (f"; clipped to +-{clip:g} (cell_clip)" if clip else "")
        + broken
    )


def _bias_note(model, op, role: str, t) -> str:
    gate = role.removesuffix("_gate_bias")
    weights = model.tensors[op.inputs[ROLES.index(f"input_to_{gate}_weights")]]
    source = model.tensors[op.inputs[0]]
    if weights.quantized and source.quantized:
        ratio = float(t.scale[0]) / (float(source.scale[0]) * float(weights.scale[0]))
        return f"scale = input scale x input_to_{gate}_weights scale (ratio {ratio:.6f})"
    return ""


def lstm_arithmetic(tflite: bytes, keras_model=None) -> pd.DataFrame:
    """The integer LSTM's computation of one time step, stage by stage, with the type and grid of
    each: what the file stores and what the kernel fixes (int32 accumulators, Q3.12 gate
    pre-activations, Q0.15 gates).

    Returns a DataFrame, one row per stage of each LSTM op: layer, stage, symbol, dtype, bits,
    scale (NaN where several grids apply), zero_point, where ("file: <role>" or "kernel"), rule
    (from lstm_eval.cc). Raises ValueError for no fused LSTM op, or one that computes in float."""
    table = lstm_tensors(tflite, keras_model)
    rows = []
    for (layer, _), part in table.groupby(["layer", "op"], sort=False):
        if not part.kernel.iloc[0].startswith("integer"):
            raise ValueError(
                f"the LSTM op of layer {layer!r} runs the {part.kernel.iloc[0]} kernel, in "
                "float: the integer arithmetic applies to files with int8 activations "
                "(full_integer, integer_only)"
            )
        r = part.set_index("role")
        norm = (
            r.loc["input_to_forget_intermediate"]
            if r.loc["forget_layer_norm_coefficients", "tensor"] >= 0
            else None
        )
        gate = (
            _grid("int16", Q3_12, 0)
            if norm is None
            else _grid(norm["dtype"], norm["scale"], norm["zero_point"])
        )
        q15, cell = _grid("int16", Q0_15, 0), r.loc["cell_state"]
        stages = [
            (
                "input",
                "x_t",
                r.loc["input"],
                "file: input",
                "the sequence, one time step at a time",
            ),
            (
                "previous output",
                "h_t-1",
                r.loc["output_state"],
                "file: output_state",
                "variable tensor: the last step's output, kept between steps",
            ),
            (
                "gate weights",
                "W_*, R_*",
                _grid("int8"),
                "file: 8 weight matrices, one scale each",
                "input_to_* multiply x_t, recurrent_to_* multiply h_t-1",
            ),
            (
                "matrix products",
                "W x_t + R h_t-1 + b",
                _grid("int32"),
                "kernel",
                "int8 x int8 products summed in int32 with the int32 gate bias, each sum "
                "rescaled to the gate's int16",
            ),
            (
                "gate pre-activations",
                "z_i, z_f, z_g, z_o",
                gate,
                "kernel" if norm is None else "file: intermediates",
                "Q3.12: scale 2^-12"
                if norm is None
                else "on the intermediates' grids, then layer-normalized",
            ),
            (
                "input, forget, output gates",
                "i, f, o = sigmoid(z)",
                q15,
                "kernel",
                "integer sigmoid, Q3.12 in, Q0.15 out",
            ),
            ("cell candidate", "g = tanh(z_g)", q15, "kernel", "integer tanh, Q3.12 in, Q0.15 out"),
            (
                "cell state",
                "c_t = f c_t-1 + i g",
                cell,
                "file: cell_state",
                f"variable tensor; products shifted to its grid, saturating add; {cell['note']}",
            ),
            (
                "tanh of the cell",
                "tanh(c_t)",
                q15,
                "kernel",
                f"integer tanh from the cell's grid, {15 + int(np.log2(cell['scale']))} "
                "integer bits (0 to 6 computed)",
            ),
            (
                "hidden state",
                "h_t = o tanh(c_t)",
                r.loc[INTERMEDIATES[4]],
                f"file: {INTERMEDIATES[4]}",
                "Q0.15 x Q0.15 product rescaled to int8",
            ),
            (
                "output",
                "h_t",
                r.loc["output"],
                "file: output",
                "the hidden state, written to the output and to output_state",
            ),
        ]
        for stage, symbol, grid, where, rule in stages:
            rows.append(
                {
                    "layer": layer,
                    "stage": stage,
                    "symbol": symbol,
                    "dtype": grid["dtype"],
                    "bits": int(np.dtype(grid["dtype"]).itemsize * 8),
                    "scale": grid["scale"],
                    "zero_point": grid["zero_point"],
                    "where": where,
                    "rule": rule,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "layer",
            "stage",
            "symbol",
            "dtype",
            "bits",
            "scale",
            "zero_point",
            "where",
            "rule",
        ],
    )


def _grid(dtype: str, scale: float = np.nan, zero_point: float = np.nan) -> dict:
    return {
        "dtype": dtype,
        "scale": float(scale),
        "zero_point": zero_point,
    }  # a grid the kernel fixes


def error_over_time(
    tflite: bytes, float_tflite: bytes, x: np.ndarray, kernels: str = "xnnpack", keras_model=None
) -> pd.DataFrame:
    """The accumulated view of each LSTM's output, time step by time step: the deployed model and
    its float reference run on `x` (n, time steps, features), each sample from the initial state,
    with `per_layer.metrics` at each step.

    Returns a DataFrame, one row per (LSTM layer, step): layer, step (1 = the first),
    `per_layer.METRICS`, scale (the output's, NaN if float), rmse/scale. Raises ValueError for no
    fused LSTM op, files that do not pair (`capture.pair`), or inputs of the wrong shape."""
    pair = capture.pair(tflite, float_tflite, keras_model)
    ops = {op.index for op in lstm_ops(pair.deployed)}
    x = np.asarray(x, np.float32)
    deployed, reference = capture.run(tflite, x, kernels), capture.run(float_tflite, x, kernels)
    rows = []
    for layer in pair.layers:
        if layer.deployed.index not in ops:
            continue
        out = layer.output(pair)
        got = capture.real(pair.deployed, out.index, deployed[out.index])
        diffs = got - reference[layer.reference.outputs[0]].reshape(got.shape)
        scale = float(out.scale[0]) if out.quantized else np.nan
        for step in range(diffs.shape[1]):
            m = per_layer.metrics(diffs[:, step])
            rows.append(
                {
                    "layer": layer.name,
                    "step": step + 1,
                    **m,
                    "scale": scale,
                    "rmse/scale": np.sqrt(m["mean_squared_error"]) / scale,
                }
            )
    return pd.DataFrame(rows, columns=["layer", "step", *per_layer.METRICS, "scale", "rmse/scale"])
