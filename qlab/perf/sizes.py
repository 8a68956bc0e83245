"""Where the bytes of a .tflite go: weights (by dtype), biases, other constants, quantization
parameters, tensor names, metadata, and the flatbuffer's own structure.

Every byte of the file is assigned to exactly one part (a byte map is kept, and overlaps
are an error), so the parts add up to the file size by construction *and* by check. `gzip_bytes`
gives the compressed size that the pruning and clustering guides report.
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
from ai_edge_litert import schema_py_generated as schema

from qlab.conversion import modes
from qlab.tflite import flatbuffer
from qlab.vocabulary import LSTM_INPUTS, RECURRENT_OPS, WEIGHT_INPUTS

BYTES_PER_PARAM = {"float32": 4, "float16": 2, "int8": 1}
"""Bytes per stored weight, by a mode's weight type (`qlab.conversion.modes.Mode.weights`)."""


class _ByteMap:
    """Assigns file byte ranges to parts; refuses to assign a byte twice."""

    def __init__(self, size: int):
        self.owner = np.full(size, -1, dtype=np.int16)
        self.parts: list[str] = []

    def claim(self, part: str, start: int, end: int) -> None:
        if part not in self.parts:
            self.parts.append(part)
        code = self.parts.index(part)
        taken = self.owner[start:end]
        clash = taken[(taken != -1) & (taken != code)]
        if clash.size:
            raise AssertionError(
                f"bytes {start}..{end} claimed by {part} and {self.parts[clash[0]]}"
            )
        taken[:] = code

    def totals(self) -> dict[str, int]:
        counts = np.bincount(self.owner + 1, minlength=len(self.parts) + 1)
        out = {part: int(counts[i + 1]) for i, part in enumerate(self.parts)}
        out["structure"] = int(counts[0])
        return out


def _vector_span(tab, slot: int, elem_size: int) -> tuple[int, int] | None:
    """Byte range of a flatbuffer vector field, its 4-byte length prefix included."""
    o = tab.Offset(slot)
    if not o:
        return None
    start = tab.Vector(o)
    return start - 4, start + tab.VectorLen(o) * elem_size


def _string_span(tab, slot: int) -> tuple[int, int] | None:
    span = _vector_span(tab, slot, 1)
    return None if span is None else (span[0], span[1] + 1)  # the terminating NUL


def _constant_roles(model: flatbuffer.ModelFile) -> dict[int, str]:
    """Buffer index -> part name, following DEQUANTIZE ops (float16 weights are stored that way)."""
    produced_by = {out: op for op in model.ops for out in op.outputs}
    roles: dict[int, str] = {}

    def source(tensor_index: int) -> flatbuffer.Tensor:
        op = produced_by.get(tensor_index)
        if op is not None and op.name == "DEQUANTIZE":
            return model.tensors[op.inputs[0]]
        return model.tensors[tensor_index]

    for op in model.ops:
        if (
            op.name in RECURRENT_OPS
        ):  # an LSTM: gate and projection weights, gate and projection biases
            places = [
                (p, "weights") for p in LSTM_INPUTS["weights"] + LSTM_INPUTS["projection"][:1]
            ]
            places += [(p, "biases") for p in LSTM_INPUTS["biases"] + LSTM_INPUTS["projection"][1:]]
        elif op.name in WEIGHT_INPUTS:
            places = list(zip(WEIGHT_INPUTS[op.name], ("weights", "biases")))
        else:
            continue
        for position, label in places:
            if position < len(op.inputs) and op.inputs[position] >= 0:
                t = source(op.inputs[position])
                if t.data is not None:
                    roles[t.buffer] = (
                        f"weights_{t.type.lower()}" if label == "weights" else "biases"
                    )
    return roles


def breakdown(tflite: bytes) -> dict[str, int]:
    """Bytes of each part of the file, every byte counted once.

    Parts: weights_<type> (e.g. weights_int8: the buffers of conv, depthwise, fully connected and
    transpose conv weights, followed through DEQUANTIZE), biases, other_constants, metadata (buffers
    named by the model's metadata), names (tensor names), quantization (min, max, scale and
    zero_point vectors) and structure (everything else: tables, vtables, offsets, padding). Buffer
    spans include their 4-byte length prefix; an absent part has no key (structure is always there).

    Returns:
        {part: bytes}, ints; the values sum to len(tflite) exactly (checked).

    Raises:
        InvalidModelError: not a readable .tflite.
        TypeError: `tflite` is not bytes-like.
        AssertionError: two parts claim the same byte, or the parts do not add up to the size
            (a bug here, not in the file)."""
    model = flatbuffer.read(tflite)
    buf = bytearray(tflite)
    root = schema.Model.GetRootAs(buf, 0)
    graph = root.Subgraphs(0)
    parts = _ByteMap(len(buf))
    roles = _constant_roles(model)
    metadata_buffers = {root.Metadata(i).Buffer() for i in range(root.MetadataLength())}

    for i in range(root.BuffersLength()):
        span = _vector_span(root.Buffers(i)._tab, 4, 1)
        if span is None or span[1] - span[0] <= 4:
            continue
        part = "metadata" if i in metadata_buffers else roles.get(i, "other_constants")
        parts.claim(part, *span)
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        name = _string_span(tensor._tab, 10)
        if name:
            parts.claim("names", *name)
        q = tensor.Quantization()
        if q is not None:
            for slot, size in ((4, 4), (6, 4), (8, 4), (10, 8)):  # min, max, scale, zero_point
                span = _vector_span(q._tab, slot, size)
                if span:
                    parts.claim("quantization", *span)
    totals = parts.totals()
    assert sum(totals.values()) == len(tflite)
    return totals


def gzip_bytes(tflite: bytes, level: int = 9) -> int:
    """The size of the file compressed with gzip (DEFLATE), how TensorFlow's pruning and
    clustering guides report what sparsity and clustering gain: a `.tflite` stores every zero and
    every repeated value in full. The guides zip the file (`zipfile.ZIP_DEFLATED`); gzip runs the
    same DEFLATE with a smaller header, without a timestamp so the same bytes give the same size.

    Returns the compressed size in bytes, an int."""
    return len(gzip.compress(bytes(tflite), compresslevel=level, mtime=0))


def ideal_bytes(num_params: int, mode_weights: str) -> int:
    """Returns parameter count × bytes per parameter of the mode's weight type: the floor to beat.
    Raises KeyError for a weight type other than float32, float16 or int8."""
    return num_params * BYTES_PER_PARAM[mode_weights]


def table(models: dict[tuple[str, str], bytes], num_params: int) -> pd.DataFrame:
    """One row per (training, mode): the parts in bytes, the file size, ideal size and ratio.

    Returns:
        DataFrame, one row per model: training, mode, one int column per part in bytes
        (weights_<type>, biases, then metadata, names, other_constants, quantization,
        structure; 0 where a file lacks the part), size_bytes (the file), ideal_bytes (for
        `num_params`, the Keras model's parameter count) and size_vs_ideal.

    Raises:
        ValueError: an unknown mode name.
        KeyError: a mode whose weight type has no entry in `BYTES_PER_PARAM`.
        InvalidModelError: bytes that are not a readable .tflite."""
    rows = []
    for (training, mode), tflite in models.items():
        row = {"training": training, "mode": mode, **breakdown(tflite)}
        row["size_bytes"] = len(tflite)
        row["ideal_bytes"] = ideal_bytes(num_params, modes.get(mode).weights)
        row["size_vs_ideal"] = len(tflite) / row["ideal_bytes"]
        rows.append(row)
    df = pd.DataFrame(rows).fillna(0)
    part_columns = [
        c
        for c in df.columns
        if c not in ("training", "mode", "size_bytes", "ideal_bytes", "size_vs_ideal")
    ]
    df[part_columns] = df[part_columns].astype(int)
    ordered = sorted(part_columns, key=lambda c: (not c.startswith("weights"), c != "biases", c))
    return df[["training", "mode", *ordered, "size_bytes", "ideal_bytes", "size_vs_ideal"]]
