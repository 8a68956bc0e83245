"""Read a .tflite flatbuffer into plain Python: tensors (with their constant data and
quantization), ops (with their builtin options) and buffers, exactly as stored.

Uses the schema LiteRT ships (`ai_edge_litert.schema_py_generated`) and never builds an
interpreter: a damaged file is caught while parsing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from qlab import arith

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
NUMPY_TYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "UINT16": np.uint16,
    "INT32": np.int32,
    "UINT32": np.uint32,
    "INT64": np.int64,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
}
ACTIVATIONS = {
    v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")
}
PADDINGS = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}


class InvalidModelError(ValueError):
    """The bytes are not a .tflite flatbuffer: truncated, corrupt, or something else."""


def check_tflite(tflite) -> bytes:
    """A cheap structural check. Returns the model as `bytes` (bytearray, memoryview copied).

    Raises TypeError if not bytes-like; InvalidModelError if too short or without "TFL3".
    """
    if isinstance(tflite, (bytearray, memoryview)):
        tflite = bytes(tflite)
    if not isinstance(tflite, bytes):
        raise TypeError(
            f"expected the bytes of a .tflite, got {type(tflite).__name__}; read a file first: "
            "pathlib.Path(name).read_bytes()"
        )
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise InvalidModelError(
            f"not a .tflite model ({len(tflite)} bytes, no 'TFL3' identifier): "
            "the file is corrupt or not a TFLite flatbuffer; convert the model again"
        )
    return tflite


def as_batch(x, sample_shape: tuple[int, ...]) -> np.ndarray:
    """Returns `x` as (n,) + sample_shape, n >= 1, dtype unchanged (one sample gets a batch axis).

    Raises ValueError for any other shape, or an empty batch.
    """
    x = np.asarray(x)
    sample_shape = tuple(int(d) for d in sample_shape)
    if x.shape == sample_shape:
        x = x[np.newaxis]
    wanted = (
        f"this model takes a non-empty batch of shape (n, {', '.join(map(str, sample_shape))}) "
        f"or one sample of shape {sample_shape}"
    )
    if x.ndim != len(sample_shape) + 1 or x.shape[1:] != sample_shape:
        raise ValueError(f"input has shape {x.shape}; {wanted}")
    if len(x) == 0:
        raise ValueError(f"input batch is empty: {wanted}")
    return x


def variable_tensors(tflite: bytes) -> int:
    """Returns how many variable tensors (state kept between invokes, as an LSTM's) the file has;
    cheap (no unpacking). Raises InvalidModelError for bytes whose tables cannot be read."""
    try:
        root = schema.Model.GetRootAs(bytearray(check_tflite(tflite)), 0)
        return sum(
            bool(graph.Tensors(i).IsVariable())
            for graph in (root.Subgraphs(k) for k in range(root.SubgraphsLength()))
            for i in range(graph.TensorsLength())
        )
    except (struct.error, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidModelError(
            f"this .tflite is truncated or corrupt ({type(exc).__name__}: {exc}); "
            "convert the model again"
        ) from exc


@dataclass
class Tensor:
    """One tensor of a .tflite as stored. `scale` (float32) and `zero_point` (int64) hold one value,
    or one per slice along `quantized_dimension`; both are empty for float tensors."""

    index: int
    name: str
    shape: tuple[int, ...]
    type: str  # the schema's name: INT8, FLOAT32, ...
    buffer: int
    data: np.ndarray | None  # constant contents, typed and shaped; None for activations
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    zero_point: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quantized_dimension: int = 0

    @property
    def dtype(self) -> np.dtype | None:
        """The NumPy dtype of the tensor's type (None for types NumPy lacks, e.g. STRING)."""
        t = NUMPY_TYPES.get(self.type)
        return None if t is None else np.dtype(t)

    @property
    def quantized(self) -> bool:
        """True if the tensor has a scale and zero point."""
        return self.scale.size > 0

    @property
    def per_axis(self) -> bool:
        """True if it has one scale per slice along `quantized_dimension`."""
        return self.scale.size > 1

    @property
    def axis(self) -> int | None:
        """The quantized axis of a per-axis tensor; None for per-tensor and float tensors."""
        return self.quantized_dimension if self.per_axis else None

    def quantize(self, x) -> np.ndarray:
        """Returns real values quantized with this tensor's parameters, in its dtype (float
        tensors: `x` cast). Raises ValueError as `qlab.arith.along`."""
        if not self.quantized:
            return np.asarray(x, dtype=self.dtype)
        qmin, qmax = arith.integer_range(self.dtype)
        return arith.quantize(
            x, self._params(self.scale), self._params(self.zero_point), qmin, qmax, self.axis
        ).astype(self.dtype)

    def dequantize(self, q, dtype=np.float32) -> np.ndarray:
        """Returns (q - zero_point) * scale in `dtype` (float tensors: `q` cast).

        Raises ValueError as `qlab.arith.along`.
        """
        if not self.quantized:
            return np.asarray(q, dtype=dtype)
        return arith.dequantize(
            q, self._params(self.scale), self._params(self.zero_point), self.axis, dtype
        )

    def _params(self, values: np.ndarray) -> np.ndarray:
        return values if self.per_axis else values[:1]


@dataclass
class Op:
    """One operator of a .tflite: its builtin name, its tensors (by index) and its options."""

    index: int
    name: str  # CONV_2D, FULLY_CONNECTED, ...
    inputs: list[int]  # tensor indices; -1 marks an absent optional input
    outputs: list[int]
    options: object | None  # the schema's options object (e.g. Conv2DOptionsT), or None

    def option(self, name: str, default=None):
        """Returns one field of the op's builtin options (e.g. "strideH"), else `default`."""
        return getattr(self.options, name, default)

    @property
    def activation(self) -> str:
        """The fused activation (NONE, RELU, RELU6, ...), if the op has one."""
        code = self.option("fusedActivationFunction")
        return "NONE" if code is None else ACTIVATIONS[code]


@dataclass
class ModelFile:
    """A whole .tflite (its one subgraph): tensors and ops in file order, the graph's input and
    output tensor indices, and the bytes each buffer holds."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    buffer_sizes: list[int]  # bytes of constant data held by each buffer
    size: int  # bytes of the whole file
    raw: object  # schema.ModelT, for anything not surfaced above

    def tensor(self, name_or_index) -> Tensor:
        """Returns the `Tensor` with this index or name; raises KeyError listing the names."""
        if isinstance(name_or_index, (int, np.integer)):
            return self.tensors[int(name_or_index)]
        for t in self.tensors:
            if t.name == name_or_index:
                return t
        raise KeyError(
            f"no tensor named {name_or_index!r}; tensors: {', '.join(t.name for t in self.tensors)}"
        )


def read(tflite: bytes) -> ModelFile:
    """Returns the `ModelFile` of one-subgraph .tflite bytes, constant data as read-only views.

    Raises TypeError if not bytes-like; InvalidModelError if not a .tflite, without a subgraph, or
    damaged; ValueError for more than one subgraph.
    """
    tflite = check_tflite(tflite)
    damage = (struct.error, IndexError, ValueError, TypeError, AttributeError, UnicodeDecodeError)
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
        count = len(model.subgraphs or [])
        if count == 1:
            buffers = [_buffer_bytes(b, tflite) for b in model.buffers or []]
            tensors, ops = _parse(model, buffers)
    except damage as exc:
        raise InvalidModelError(
            f"this .tflite ({len(tflite)} bytes) is truncated or corrupt: its flatbuffer "
            f"does not hold together ({type(exc).__name__}: {exc}); convert the model again"
        ) from exc
    if count == 0:
        raise InvalidModelError(
            f"this .tflite ({len(tflite)} bytes) has no subgraph: it is corrupt or empty; "
            "convert the model again"
        )
    if count > 1:
        raise ValueError(
            f"qlab reads models of one subgraph, as the converter writes for Keras models; "
            f"this one has {count}"
        )
    graph = model.subgraphs[0]
    return ModelFile(
        tensors,
        ops,
        [int(x) for x in graph.inputs],
        [int(x) for x in graph.outputs],
        [len(b) for b in buffers],
        len(tflite),
        model,
    )


def _parse(model, buffers: list[bytes]) -> tuple[list[Tensor], list[Op]]:
    graph = model.subgraphs[0]
    tensors = [_tensor(i, t, buffers) for i, t in enumerate(graph.tensors or [])]
    ops = [_op(i, op, model) for i, op in enumerate(graph.operators or [])]
    return tensors, ops


def _tensor(i: int, t, buffers: list[bytes]) -> Tensor:
    type_name = TYPE_NAMES.get(t.type, str(t.type))
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    raw = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else b""
    data = None
    if raw and type_name in NUMPY_TYPES:
        data = np.frombuffer(raw, dtype=NUMPY_TYPES[type_name]).reshape(shape)
    q = t.quantization
    scale = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float32)
    zero_point = np.asarray(
        q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64
    )
    return Tensor(
        i,
        _text(t.name),
        shape,
        type_name,
        t.buffer,
        data,
        scale,
        zero_point,
        int(q.quantizedDimension) if q is not None else 0,
    )


def _op(i: int, op, model) -> Op:
    code = model.operatorCodes[op.opcodeIndex]
    name = OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
    if name == "CUSTOM" and code.customCode:
        name = f"CUSTOM:{_text(code.customCode)}"
    return Op(i, name, [int(x) for x in op.inputs], [int(x) for x in op.outputs], op.builtinOptions)


def _buffer_bytes(buffer, tflite: bytes) -> bytes:
    if buffer.data is not None and len(buffer.data):
        return np.asarray(buffer.data, dtype=np.uint8).tobytes()
    if buffer.offset > 1 and buffer.size:  # data stored after the flatbuffer (large models)
        if buffer.offset + buffer.size > len(tflite):
            raise ValueError(
                f"a buffer ends at byte {buffer.offset + buffer.size}, past the file's end"
            )
        return tflite[buffer.offset : buffer.offset + buffer.size]
    return b""


def _text(value) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value or "")
