"""Read a .tflite flatbuffer into plain Python: tensors (with their constant data and
quantization), ops (with their builtin options) and buffers.

The interpreter reports tensors once they are allocated; this reads the file itself, so
it also sees constant data, per-axis parameters and op options exactly as stored. It uses
the flatbuffer schema that LiteRT ships (`ai_edge_litert.schema_py_generated`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from qlab.runtime import Runtime

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
NUMPY_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT8": np.int8,
    "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16, "INT32": np.int32,
    "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64, "BOOL": np.bool_,
}
ACTIVATIONS = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
PADDINGS = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}


@dataclass
class Tensor:
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
        t = NUMPY_TYPES.get(self.type)
        return None if t is None else np.dtype(t)

    @property
    def quantized(self) -> bool:
        return self.scale.size > 0

    @property
    def per_axis(self) -> bool:
        return self.scale.size > 1

    @property
    def detail(self) -> dict:
        """The interpreter-style detail (dtype, first scale and zero point) that qlab.runtime's
        quantize_array and dequantize_array read."""
        return {"dtype": self.dtype, "quantization": (float(self.scale[0]), int(self.zero_point[0]))
                if self.quantized else (0.0, 0)}


@dataclass
class Op:
    index: int
    name: str  # CONV_2D, FULLY_CONNECTED, ...
    inputs: list[int]  # tensor indices; -1 marks an absent optional input
    outputs: list[int]
    options: object | None  # the schema's options object (e.g. Conv2DOptionsT), or None

    def option(self, name: str, default=None):
        return getattr(self.options, name, default)

    @property
    def activation(self) -> str:
        """The fused activation (NONE, RELU, RELU6, ...), if the op has one."""
        code = self.option("fusedActivationFunction")
        return "NONE" if code is None else ACTIVATIONS[code]


@dataclass
class ModelFile:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    buffer_sizes: list[int]  # bytes of constant data held by each buffer
    size: int  # bytes of the whole file
    raw: object  # schema.ModelT, for anything not surfaced above

    def tensor(self, name_or_index) -> Tensor:
        if isinstance(name_or_index, (int, np.integer)):
            return self.tensors[int(name_or_index)]
        for t in self.tensors:
            if t.name == name_or_index:
                return t
        raise KeyError(f"no tensor named {name_or_index!r}; tensors: {', '.join(t.name for t in self.tensors)}")


def read(tflite: bytes) -> ModelFile:
    """Parse the .tflite bytes (one subgraph models, as the converter writes for Keras models)."""
    Runtime(tflite, kernels="builtin")  # the interpreter verifies the flatbuffer (clear error if not)
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    if len(model.subgraphs) != 1:
        raise ValueError(f"expected one subgraph, found {len(model.subgraphs)}")
    graph = model.subgraphs[0]
    buffers = [_buffer_bytes(b, tflite) for b in model.buffers]
    tensors = []
    for i, t in enumerate(graph.tensors):
        type_name = TYPE_NAMES.get(t.type, str(t.type))
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        raw = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else b""
        data = None
        if raw and type_name in NUMPY_TYPES:
            data = np.frombuffer(raw, dtype=NUMPY_TYPES[type_name]).reshape(shape)
        q = t.quantization
        scale = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float32)
        zero_point = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
        tensors.append(Tensor(i, _text(t.name), shape, type_name, t.buffer, data, scale, zero_point,
                              int(q.quantizedDimension) if q is not None else 0))
    ops = []
    for i, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        name = OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        if name == "CUSTOM" and code.customCode:
            name = f"CUSTOM:{_text(code.customCode)}"
        ops.append(Op(i, name, [int(x) for x in op.inputs], [int(x) for x in op.outputs], op.builtinOptions))
    return ModelFile(tensors, ops, [int(x) for x in graph.inputs], [int(x) for x in graph.outputs],
                     [len(b) for b in buffers], len(tflite), model)


def _buffer_bytes(buffer, tflite: bytes) -> bytes:
    if buffer.data is not None and len(buffer.data):
        return np.asarray(buffer.data, dtype=np.uint8).tobytes()
    if buffer.offset > 1 and buffer.size:  # data stored after the flatbuffer (large models)
        return tflite[buffer.offset: buffer.offset + buffer.size]
    return b""


def _text(value) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value or "")
