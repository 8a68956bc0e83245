"""Which Keras layer each op of a .tflite came from, and a unique label per op: the names every
per-layer table, figure, grid map and `keep_float` uses.

The converter writes Keras layer paths into tensor names ('model/[nested model/]layer/TFOp', several
joined by ';' when it fuses ops), but not always where a naive reading looks: a conv fused with its
BatchNorm and ReLU carries the ReLU's name on its output, a model's output tensor is renamed
('StatefulPartitionedCall:0'), and some ops carry no path at all ('tfl.unidirectional_sequence_lstm').
So an op is named, in this order, after:

1. the Keras output layer the file's signature names, for an op writing a model output;
2. the layer that owns its weights, read from the weight tensor's name (through a DEQUANTIZE, for
   float16 weights);
3. the last layer path among its output tensor's fused names (the op's own layer: 'b0_relu/Relu;
   b0_add/add' is the Add);
4. with the Keras model at hand, its recurrent layers in order, for the recurrent ops;
5. the op that produced its first input (a STRIDED_SLICE after an LSTM belongs to the LSTM);
6. else the op's own name in lower case.

Path segments are matched against the Keras model's leaf layer names when it is given (so layers of
a nested model get their own names); without it, the segment after the model's name is taken.
"""

from __future__ import annotations

from qlab.tflite.flatbuffer import ModelFile, Op
from qlab.vocabulary import EDGE_OPS, RECURRENT_OPS, WEIGHT_INPUTS

FAKE_QUANT = (
    "Quant"  # in the TF node names of tfmot's fake-quant ops (MovingAvgQuant, LastValueQuant, ...)
)


def compute_ops(model: ModelFile) -> list[Op]:
    """The ops that compute: every op but the QUANTIZE and DEQUANTIZE that quantization adds.

    Returns:
        the model's `Op`s in file order, edge ops left out.
    """
    return [op for op in model.ops if op.name not in EDGE_OPS]


def leaf_layers(keras_model) -> list:
    """Every layer of a Keras model that is not itself a model, nested models opened, in order.

    Duck-typed (a layer with `.layers` is a model; input layers are left out), so that naming
    needs no TensorFlow import.

    Returns:
        the layers.
    """
    found = []
    for layer in keras_model.layers:
        if isinstance(getattr(layer, "layers", None), list):
            found += leaf_layers(layer)
        elif type(layer).__name__ != "InputLayer":
            found.append(layer)
    return found


def recurrent_layers(keras_model) -> list[str]:
    """The model's recurrent layers (LSTM, GRU, RNN: the layers with a `cell`).

    Returns:
        their names, in order.
    """
    return [layer.name for layer in leaf_layers(keras_model) if hasattr(layer, "cell")]


def keras_layers(keras_model) -> tuple[list[str], list[str]]:
    """The leaf layer names of a Keras model (nested models opened) and its recurrent layers,
    with QAT's 'quant_' prefix taken off (a QAT model names its layers as its float model does).

    Returns:
        (every leaf layer name in order, the names of the RNN layers among them).
    """
    names = [layer.name.removeprefix("quant_") for layer in leaf_layers(keras_model)]
    return names, [name.removeprefix("quant_") for name in recurrent_layers(keras_model)]


def layer_names(model: ModelFile, keras_model=None) -> dict[int, str]:
    """The Keras layer of every compute op, by the rules of the module docstring.

    Args:
        keras_model: the Keras model the file was converted from, if at hand: it resolves
            nested models and recurrent ops.

    Returns:
        {op index: Keras layer name}, for every op of `compute_ops(model)`.
    """
    leaves, recurrent = keras_layers(keras_model) if keras_model is not None else (None, [])
    outputs = _signature_outputs(model)
    producer = {out: op for op in model.ops for out in op.outputs}
    names: dict[int, str] = {}
    recurrent = list(recurrent)
    for op in compute_ops(model):
        name = outputs.get(op.outputs[0]) if op.outputs else None
        if name is None and op.name in WEIGHT_INPUTS:
            weights = _source(model, producer, op.inputs[WEIGHT_INPUTS[op.name][0]])
            name = _layer_in(weights, leaves)
        if name is None:
            name = _layer_in(model.tensors[op.outputs[0]].name, leaves)
        if name is None and op.name in RECURRENT_OPS and recurrent:
            name = recurrent.pop(0)
        if name is None and op.inputs and op.inputs[0] in producer:
            source = producer[op.inputs[0]]
            while source.name in EDGE_OPS and source.inputs[0] in producer:
                source = producer[source.inputs[0]]
            name = names.get(source.index)
        names[op.index] = name or op.name.lower()
    return names


def output_layers(model: ModelFile, keras_model=None) -> dict[int, str]:
    """The Keras layer whose output each compute op's output holds: for a conv fused with its
    BatchNorm and ReLU, the ReLU layer (the first path of the fused name list); for a model
    output, the signature's output layer. Where the file names none, the op is left out.

    Returns:
        {op index: Keras layer name}.
    """
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
    """A unique label per compute op: its Keras layer's name for the layer's first op, and
    'layer/op' for any further op of the same layer (a Dense named 'head' with a softmax
    activation gives 'head' and 'head/softmax').

    Returns:
        {op index: label}, labels unique, in op order.
    """
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
    """The unique label of one compute op (see `labels`).

    Returns:
        the label.

    Raises:
        KeyError: an edge op (QUANTIZE, DEQUANTIZE), which has no label.
    """
    return labels(model, keras_model)[op.index]


def layer_of(tensor_name: str, op_name: str, keras_model=None) -> str:
    """The Keras layer a tensor name points to ('model/block_conv/Relu;...' -> 'block_conv').

    Returns:
        the layer named by the last path of the fused name list, or `op_name` in lower case.
    """
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
    """The layer of the last (or `first`) path in a fused name list that names one, or None. QAT's
    fake-quant nodes (…/MovingAvgQuant, …/LastValueQuant/…) belong to the layer before, and are
    passed over."""
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
