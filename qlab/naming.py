"""Which Keras layer each op of a .tflite came from, and which ops compute (not QUANTIZE or
DEQUANTIZE): the names every per-layer table and figure uses.

Read from the converter's tensor names, which carry the Keras layer path ('model/layer/op').
"""

from __future__ import annotations

from qlab.tflite_file import ModelFile, Op
from qlab.vocabulary import EDGE_OPS


def compute_ops(model: ModelFile) -> list[Op]:
    """The ops that compute: every op but the QUANTIZE and DEQUANTIZE that quantization adds.

    Returns:
        the model's `Op`s in file order, edge ops left out.
    """
    return [op for op in model.ops if op.name not in EDGE_OPS]


def layer_name(model: ModelFile, op: Op) -> str:
    """The Keras layer an op came from, read from its output tensor's name (conv1, dense, ...).

    Returns:
        the layer name; for an op whose tensor name has no layer path, the op's name in lower case.
    """
    return layer_of(model.tensors[op.outputs[0]].name, op.name)


def layer_of(tensor_name: str, op_name: str) -> str:
    """'digits_cnn/conv1/Relu;...' -> 'conv1' (QAT's 'quant_' prefix removed).

    Returns:
        the second path segment of the tensor's first name, or `op_name` in lower case.
    """
    parts = tensor_name.split(";")[0].split("/")
    name = parts[1] if len(parts) > 1 else op_name.lower()
    return name.removeprefix("quant_")
