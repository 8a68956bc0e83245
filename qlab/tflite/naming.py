"""Which Keras layer each op of a .tflite came from, and a unique label per op: the names every
per-layer table, figure, grid map and `keep_float` uses.

The converter writes Keras layer paths into tensor names ('model/[nested model/]layer/TFOp', joined
by ';' when it fuses ops), but a conv fused with its BatchNorm and ReLU carries the ReLU's name, a
model output is renamed ('StatefulPartitionedCall:0'), and some ops carry no path at all. So an op
is named, in this order, after:

1. the Keras output layer the file's signature names, for an op writing a model output;
2. the layer that owns its weights, read from the weight tensor's name (through a DEQUANTIZE, for
   float16 weights);
3. the last layer path among its output tensor's fused names (the op's own layer: 'b0_relu/Relu;
   b0_add/add' is the Add);
4. with the Keras model at hand, its recurrent layers in order, for the recurrent ops;
5. the op that produced its first input (a STRIDED_SLICE after an LSTM belongs to the LSTM);
6. else the op's own name in lower case.

Path segments are matched against the Keras model's leaf layer names when it is given; without
it, the segment after the model's name is taken.
"""

from __future__ import annotations

from qlab.tflite.flatbuffer import ModelFile, Op
from qlab.vocabulary import EDGE_OPS, RECURRENT_OPS, WEIGHT_INPUTS

# in the TF node names of tfmot's fake-quant ops (MovingAvgQuant, LastValueQuant, ...)
FAKE_QUANT = "Quant"


def compute_ops(model: ModelFile) -> list[Op]:
    """Returns the `Op`s in file order but the QUANTIZE and DEQUANTIZE quantization adds."""
    return [op for op in model.ops if op.name not in EDGE_OPS]


def leaf_layers(keras_model) -> list:
    """Returns every layer that is not itself a model, nested models opened, input layers left
    out, in order (duck-typed: no TensorFlow import)."""
    found = []
    for layer in keras_model.layers:
        if isinstance(getattr(layer, "layers", None), list):
            found += leaf_layers(layer)
        elif type(layer).__name__ != "InputLayer":
            found.append(layer)
    return found


def recurrent_layers(keras_model) -> list[str]:
    """Returns the names of the recurrent layers (those with a `cell`), in order."""
    return [layer.name for layer in leaf_layers(keras_model) if hasattr(layer, "cell")]


def keras_layers(keras_model) -> tuple[list[str], list[str]]:
    """Returns (every leaf layer name, the recurrent ones among them), 'quant_' prefix taken off."""
    names = [layer.name.removeprefix("quant_") for layer in leaf_layers(keras_model)]
    return names, [name.removeprefix("quant_") for name in recurrent_layers(keras_model)]


def layer_names(model: ModelFile, keras_model=None) -> dict[int, str]:
    """Returns {op index: Keras layer name} for every compute op, by the module docstring's rules.

    `keras_model` (the model the file came from) resolves nested models and recurrent ops.
    """
    leaves, recurrent = keras_layers(keras_model) if keras_model is not None else (None, [])
    outputs = _signature_outputs(model)
    producer = {out: op for op in model.ops for out in op.outputs}
    names: dict[int, str] = {}
    recurrent = list(recurrent)
    for op in compute_ops(model):
        name = outputs.get(op.outputs[0]) if op.outputs else None
        if name is None:
            name = _own_layer(model, op, producer, leaves)
        if name is None and op.name in RECURRENT_OPS and recurrent:
            name = recurrent.pop(0)
        if name is None:
            name = _producer_layer(op, producer, names)
        names[op.index] = name or op.name.lower()
    return names


def _own_layer(model: ModelFile, op: Op, producer: dict, leaves: list[str] | None) -> str | None:
    """Rules 2 and 3: the layer of the op's weights, else of its output's fused names."""
    name = None
    if op.name in WEIGHT_INPUTS:
        weights = _source(model, producer, op.inputs[WEIGHT_INPUTS[op.name][0]])
        name = _layer_in(weights, leaves)
    if name is None:
        name = _layer_in(model.tensors[op.outputs[0]].name, leaves)
    return name


def _producer_layer(op: Op, producer: dict, names: dict[int, str]) -> str | None:
    """Rule 5: the layer of the op that produced the first input, through edge ops."""
    if not (op.inputs and op.inputs[0] in producer):
        return None
    source = producer[op.inputs[0]]
    while source.name in EDGE_OPS and source.inputs[0] in producer:
        source = producer[source.inputs[0]]
    return names.get(source.index)


def output_layers(model: ModelFile, keras_model=None) -> dict[int, str]:
    """Returns {op index: the Keras layer whose output the op's output holds} (a fused conv: its
    ReLU; a model output: the signature's layer); ops the file names no layer for are left out."""
    leaves = keras_layers(keras_model)[0] if keras_model is not None else None
    outputs = _signature_outputs(model)
    found = {}
    for op in compute_ops(model):
        name = outputs.get(op.outputs[0]) or _layer_in(
            model.tensors[op.outputs[0]].name, leaves, first=True
        )
        if name is not None:
            found[op.index] = name
    return found


def labels(model: ModelFile, keras_model=None) -> dict[int, str]:
    """Returns {op index: unique label}, in op order: the layer's name for its first op, then
    'layer/op' (a Dense 'head' with a softmax gives 'head' and 'head/softmax')."""
    seen: dict[str, int] = {}
    found = {}
    for index, name in layer_names(model, keras_model).items():
        label = name if name not in seen else f"{name}/{model.ops[index].name.lower()}"
        while label in found.values():
            label = f"{label}_"
        seen[name] = seen.get(name, 0) + 1
        found[index] = label
    return found


def layer_name(model: ModelFile, op: Op, keras_model=None) -> str:
    """Returns one compute op's label (`labels`); raises KeyError for an edge op."""
    return labels(model, keras_model)[op.index]


def layer_of(tensor_name: str, op_name: str, keras_model=None) -> str:
    """Returns the layer a tensor name points to ('model/block_conv/Relu;...' -> 'block_conv'),
    else `op_name` in lower case."""
    leaves = keras_layers(keras_model)[0] if keras_model is not None else None
    return _layer_in(tensor_name, leaves) or op_name.lower()


def _signature_outputs(model: ModelFile) -> dict[int, str]:
    """Tensor index -> Keras output layer name, from the file's first signature."""
    signatures = getattr(model.raw, "signatureDefs", None) or []
    if not signatures:
        return {}
    return {
        int(o.tensorIndex): _text(o.name).removeprefix("quant_")
        for o in signatures[0].outputs or []
    }


def _source(model: ModelFile, producer: dict, index: int) -> str:
    """The name of a weight tensor, through the DEQUANTIZE that float16 weights pass."""
    while index in producer and producer[index].name == "DEQUANTIZE":
        index = producer[index].inputs[0]
    return model.tensors[index].name


def _layer_in(tensor_name: str, leaves: list[str] | None, first: bool = False) -> str | None:
    """The layer of the last (or `first`) path in a fused name list that names one, or None;
    QAT's fake-quant nodes (…/MovingAvgQuant/…) are passed over."""
    parts = tensor_name.split(";")
    for part in parts if first else reversed(parts):
        segments = part.split("/")
        if len(segments) < 2 or any(FAKE_QUANT in segment for segment in segments[2:]):
            continue
        if leaves is None:
            return segments[1].removeprefix("quant_")
        for segment in reversed(segments[1:]):
            if segment.removeprefix("quant_") in leaves:
                return segment.removeprefix("quant_")
    return None


def _text(value) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
