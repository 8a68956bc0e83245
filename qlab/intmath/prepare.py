"""Reading an integer-only .tflite for the engine: which models it can run, and the integer
parameters each kernel computes in its Prepare step, before any input arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qlab.intmath import elementwise, fixedpoint, pooling
from qlab.tflite import flatbuffer, naming
from qlab.vocabulary import OUTPUT_CHANNEL_AXIS, WEIGHTED_OPS

IMPLEMENTED = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "MEAN",
    "QUANTIZE",
    "RESHAPE",
    "SOFTMAX",
)
"""The ops the engine runs."""
KERNEL_RULES = dict.fromkeys(
    ("ADD", "AVERAGE_POOL_2D", "CONCATENATION", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "MEAN"),
    ("builtin", "reference"),
)
"""Ops whose rules the engine has for some kernels only: op -> those kernels. The other ops of
`IMPLEMENTED` follow all three ("builtin", "reference", "xnnpack")."""
INTEGER_TYPES = ("INT8", "UINT8")
"""The tensor types the engine runs."""


class IntegerModelError(ValueError):
    """The model cannot run on the integer engine: not integer-only, or an op it lacks."""


@dataclass
class Step:
    """One op, prepared: its tensors and the integer parameters its kernel computes before running.

    `params`, by op: the weighted ops' zero points, weights, bias, per_channel, real_multiplier,
    multiplier and shift (per output channel), fp32_scale (XNNPACK's), act_min, act_max, and
    stride, dilation, padding or weights_zero_point; SOFTMAX's scales, beta and output zero
    point; QUANTIZE's zero points, multiplier, shift; and those of `_prepare_int8_op`'s helpers."""

    op: flatbuffer.Op
    layer: str  # a short name for tables: the Keras layer, e.g. conv2d, dense, dense/softmax
    inputs: list  # flatbuffer.Tensor for each input (None for an absent optional one)
    output: flatbuffer.Tensor
    params: dict = field(default_factory=dict)


def check_integer_only(model: flatbuffer.ModelFile) -> None:
    """Refuse float, dynamic-range and 16-bit models, and ops the engine lacks, saying which.

    Raises IntegerModelError for a float tensor (naming the kind of model), more than one input
    or output, or ops outside `IMPLEMENTED`."""
    io = [model.tensors[i] for i in model.inputs + model.outputs]
    activations = [model.tensors[o] for op in model.ops for o in op.outputs]
    # int32 activations are shapes being computed (SHAPE, PACK, ...): the missing-ops error below
    # names them
    wrong = next(
        (t for t in io + activations if t.type not in INTEGER_TYPES and t.type != "INT32"), None
    )
    if wrong is not None:
        raise IntegerModelError(
            "run_integer needs an integer-only model (mode 'integer_only' or "
            f"'integer_only_uint8'); this model has {wrong.type.lower()} "
            f"{_where(model, wrong)} {wrong.name!r}{_kind(model)}. Convert it with "
            "qlab.quantize(model, 'integer_only', calibration)."
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise IntegerModelError(
            f"run_integer takes models with one input and one output; this one has "
            f"{len(model.inputs)} and {len(model.outputs)}"
        )
    missing = sorted({op.name for op in model.ops if op.name not in IMPLEMENTED})
    if missing:
        raise IntegerModelError(
            f"op{'s' * (len(missing) > 1)} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not implemented by qlab.intmath; "
            f"implemented: {', '.join(IMPLEMENTED)}. Run this model on LiteRT only "
            "(qlab.tflite.runtime.Runtime), or build it from layers that convert to these ops."
        )


def _where(model: flatbuffer.ModelFile, tensor: flatbuffer.Tensor) -> str:
    if tensor.index in model.inputs:
        return "input"
    return "output" if tensor.index in model.outputs else "tensor"


def check_kernels(steps: list, kernels: str) -> None:
    """Refuse ops whose rules the engine lacks for `kernels` (`KERNEL_RULES`), saying which.

    Raises IntegerModelError naming the op and the kernels it follows."""
    for step in steps:
        follows = KERNEL_RULES.get(step.op.name)
        if follows is not None and kernels not in follows:
            raise IntegerModelError(
                f"{step.op.name} (op {step.op.index}, {step.layer}) follows the "
                f"{' and '.join(follows)} kernels' rules only in qlab.intmath, not {kernels!r}; "
                f"run this model with kernels={follows[0]!r}, or on LiteRT "
                f"(qlab.tflite.runtime.Runtime) for {kernels!r}"
            )


def _kind(model: flatbuffer.ModelFile) -> str:
    constants = {t.type for t in model.tensors if t.data is not None and t.type != "INT32"}
    names = {op.name for op in model.ops}
    if any(t.type == "INT16" for t in model.tensors):
        return " (an int16x8 model: 16-bit activations)"
    if "QUANTIZE" in names and "INT8" in constants:
        return " (a full_integer model: int8 inside, float at its input and output)"
    if "INT8" in constants:
        return " (a dynamic_range model: int8 weights, float activations)"
    if "FLOAT16" in constants:
        return " (a float16 model: float16 weights, float math)"
    return " (a float32 model)"


def prepare(model: flatbuffer.ModelFile, op: flatbuffer.Op, label: str | None = None) -> Step:
    """Returns the `Step` of `op`, its `params` those its kernel computes in Prepare.

    Raises:
        IntegerModelError: tensor types or grids the kernels do not accept, named with the op: a
            float or unquantized input, conv or fully connected without int8 input and weights and
            int32 bias, int8 conv weights with a non-zero zero_point, shuffled fully connected
            weights, a SOFTMAX whose output grid is not 1/256 and -128, and the cases
            `_prepare_int8_op` refuses.
        NotImplementedError: a fused activation other than NONE, RELU, RELU6, RELU_N1_TO_1."""
    inputs = [model.tensors[i] if i >= 0 else None for i in op.inputs]
    label = label or naming.labels(model).get(op.index, op.name.lower())
    step = Step(op, label, inputs, model.tensors[op.outputs[0]])
    x, out = inputs[0], step.output
    if x.type not in INTEGER_TYPES or not x.quantized:
        raise IntegerModelError(
            f"{op.name} (op {op.index}) has input {x.name!r} of type {x.type}; "
            "the engine runs int8 and uint8 tensors only"
        )
    grids = float(x.scale[0]), float(out.scale[0]), int(x.zero_point[0]), int(out.zero_point[0])
    if op.name in WEIGHTED_OPS:
        _prepare_weighted(step, *grids)
    elif op.name in _PREPARE:
        _PREPARE[op.name](step, *grids)
    elif op.name in KERNEL_RULES:
        _prepare_int8_op(step)
    return step


def _prepare_weighted(step: Step, s_in: float, s_out: float, zp_in: int, zp_out: int) -> None:
    """Conv, depthwise conv and fully connected. The real multiplier S_in·S_w/S_out per output
    channel in float64 (PopulateConvolutionQuantizationParams, tflite/kernels/kernel_util.cc);
    per-tensor fully connected takes S_in·S_w in float32 first (GetQuantizedConvolutionMultipler,
    kernel_util.cc); XNNPACK's float32 scale (src/operators/convolution-nhwc.c,
    fully-connected-nc.c); the clamp (CalculateActivationRangeQuantized, kernel_util.cc)."""
    op, out, p = step.op, step.output, step.params
    x, w, b = step.inputs[0], step.inputs[1], step.inputs[2]
    if x.type != "INT8" or w.type != "INT8" or (b is not None and b.type != "INT32"):
        raise IntegerModelError(
            f"{op.name} (op {op.index}) must have int8 input and weights and an "
            f"int32 bias; it has {x.type}, {w.type}, {b.type if b else 'no bias'}"
        )
    per_channel = w.per_axis
    channels = w.shape[OUTPUT_CHANNEL_AXIS[op.name]]
    w_scale = np.broadcast_to(w.scale.astype(np.float64), (channels,))
    real = s_in * w_scale / s_out  # PopulateConvolutionQuantizationParams: double throughout
    if op.name == "FULLY_CONNECTED" and not per_channel:
        # GetQuantizedConvolutionMultipler (kernel_util.cc) takes the product in float32
        multiplier, shift = fixedpoint.quantize_multiplier(
            float(np.float32(x.scale[0]) * w.scale[0]) / s_out
        )
    else:
        multiplier, shift = fixedpoint.quantize_multiplier(real)
    act_min, act_max = fixedpoint.activation_range(op.activation, out.scale[0], zp_out, out.dtype)
    p.update(
        input_zero_point=zp_in,
        output_zero_point=zp_out,
        weights=w.data,
        bias=None if b is None else b.data,
        per_channel=per_channel,
        real_multiplier=real,
        multiplier=multiplier,
        shift=shift,
        act_min=act_min,
        act_max=act_max,
        fp32_scale=np.float32(x.scale[0]) * w.scale.astype(np.float32) / np.float32(out.scale[0]),
    )
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if np.any(w.zero_point != 0):
            raise IntegerModelError(
                f"{op.name} (op {op.index}) has int8 weights with a non-zero zero point"
            )
        p.update(
            stride=(op.option("strideH"), op.option("strideW")),
            dilation=(op.option("dilationHFactor"), op.option("dilationWFactor")),
            padding=flatbuffer.PADDINGS[op.option("padding")],
        )
    else:
        if op.option("weightsFormat", 0) != 0:
            raise IntegerModelError(
                f"FULLY_CONNECTED (op {op.index}) uses a shuffled weights format"
            )
        p["weights_zero_point"] = 0 if per_channel else int(w.zero_point[0])


def _prepare_softmax(step: Step, s_in: float, s_out: float, zp_in: int, zp_out: int) -> None:
    """The output grid int8, 1/256 and -128 (SoftmaxPrepare, tflite/kernels/activations.cc)."""
    op, x, out = step.op, step.inputs[0], step.output
    if x.type != "INT8" or out.type != "INT8" or zp_out != -128 or abs(s_out * 256 - 1) > 1e-3:
        raise IntegerModelError(
            f"SOFTMAX (op {op.index}) must map int8 to int8 with output scale 1/256 "
            f"and zero point -128; it has {x.type} -> {out.type}, {s_out}, {zp_out}"
        )
    step.params.update(
        input_scale=s_in,
        beta=float(op.option("beta", 1.0)),
        output_scale=s_out,
        output_zero_point=zp_out,
    )


def _prepare_quantize(step: Step, s_in: float, s_out: float, zp_in: int, zp_out: int) -> None:
    """Input scale / output scale in double (Prepare, tflite/kernels/to_tflite.cc)."""
    multiplier, shift = fixedpoint.quantize_multiplier(s_in / s_out)
    step.params.update(
        input_zero_point=zp_in, output_zero_point=zp_out, multiplier=multiplier, shift=shift
    )


_PREPARE = {"SOFTMAX": _prepare_softmax, "QUANTIZE": _prepare_quantize}


def _prepare_int8_op(step: Step) -> None:
    """ADD, CONCATENATION, MAX_POOL_2D, AVERAGE_POOL_2D and MEAN: int8 only (their uint8 kernels
    differ), activation inputs only, the batch axis left alone. Raises IntegerModelError naming
    what the op cannot do: a non-int8 tensor, a constant input, ADD with broadcasting or scales
    outside its multiplier's range, inputs on other grids than the output (CONCATENATION,
    pooling), an activation on CONCATENATION, a MEAN over the batch axis or with computed axes."""
    op, out = step.op, step.output
    name = f"{op.name} (op {op.index})"
    n_data = 1 if op.name == "MEAN" else len(op.inputs)  # MEAN's second input is its axes
    data, constants = step.inputs[:n_data], step.inputs[n_data:]
    if any(t.type != "INT8" for t in data + [out]):
        raise IntegerModelError(
            f"{name} runs int8 tensors only in qlab.intmath (the uint8 kernels follow "
            f"other rules); it has {', '.join(t.type for t in data)} -> {out.type}"
        )
    if any(t.data is not None for t in data) or any(t is None or t.data is None for t in constants):
        raise IntegerModelError(
            f"{name}: inputs that are constants (or axes that are computed) are not "
            "implemented by qlab.intmath"
        )
    _PREPARE_INT8.get(op.name, _prepare_pool)(step, name, data, constants, int(out.zero_point[0]))


def _activation_range(step: Step, zp_out: int) -> None:
    op, out = step.op, step.output
    step.params["act_min"], step.params["act_max"] = fixedpoint.activation_range(
        op.activation, out.scale[0], zp_out, out.dtype
    )


def _prepare_add(step: Step, name: str, data: list, constants: list, zp_out: int) -> None:
    """Prepare in tflite/kernels/add.cc (`elementwise.add_rescale`); no broadcasting."""
    _activation_range(step, zp_out)
    if data[0].shape != data[1].shape:
        raise IntegerModelError(
            f"{name} broadcasts {data[0].shape} with {data[1].shape}; "
            "qlab.intmath adds inputs of one shape only"
        )
    try:
        rescale = elementwise.add_rescale(data[0].scale[0], data[1].scale[0], step.output.scale[0])
    except ValueError as exc:
        raise IntegerModelError(f"{name}: {exc}") from exc
    step.params["rescale"] = rescale
    step.params.update(
        zero_points=tuple(int(t.zero_point[0]) for t in data), output_zero_point=zp_out
    )


def _prepare_concatenation(step: Step, name: str, data: list, constants: list, zp_out: int) -> None:
    """Prepare in tflite/kernels/concatenation.cc: every int8 input on the output's grid (the
    requantizing ConcatenationWithScaling is uint8's), no activation."""
    op, out = step.op, step.output
    axis = int(op.option("axis")) % len(out.shape)
    if axis == 0 or op.activation != "NONE":
        raise IntegerModelError(
            f"{name} along axis {axis} with activation {op.activation}: qlab.intmath "
            "concatenates along a sample axis, without activation (as LiteRT)"
        )
    if any(t.scale[0] != out.scale[0] or t.zero_point[0] != zp_out for t in data):
        raise IntegerModelError(
            f"{name} has inputs on other grids than its output: requantizing int8 "
            "concatenation is refused by LiteRT (concatenation.cc) and by qlab.intmath"
        )
    step.params["axis"] = axis


def _prepare_mean(step: Step, name: str, data: list, constants: list, zp_out: int) -> None:
    """PrepareMeanOrSum and EvalMean in tflite/kernels/reduce.cc (`pooling.mean_rescale`,
    `pooling.mean_spatial_rescale`)."""
    op, out, x = step.op, step.output, data[0]
    axes = tuple(dict.fromkeys(int(a) % len(x.shape) for a in np.ravel(constants[0].data)))
    if 0 in axes:
        raise IntegerModelError(
            f"{name} averages over the batch axis; qlab.intmath averages within samples"
        )
    keep_dims = bool(op.option("keepDims", False))
    count = int(np.prod([x.shape[a] for a in axes]))
    multiplier, shift = pooling.mean_rescale(x.scale[0], out.scale[0], count)
    step.params.update(
        axes=axes,
        keep_dims=keep_dims,
        input_zero_point=int(x.zero_point[0]),
        output_zero_point=zp_out,
        multiplier=multiplier,
        shift=shift,
        spatial=keep_dims and len(x.shape) == 4 and set(axes) == {1, 2},
        spatial_rescale=pooling.mean_spatial_rescale(
            x.scale[0], int(x.zero_point[0]), out.scale[0], zp_out, count
        ),
    )


def _prepare_pool(step: Step, name: str, data: list, constants: list, zp_out: int) -> None:
    """GenericPrepare in tflite/kernels/pooling.cc: input and output on one grid."""
    op, x = step.op, data[0]
    _activation_range(step, zp_out)
    if abs(float(x.scale[0]) - float(step.output.scale[0])) > 1e-6 or x.zero_point[0] != zp_out:
        raise IntegerModelError(
            f"{name} has its input and output on different grids; the pooling kernels "
            "assume one grid (GenericPrepare in tflite/kernels/pooling.cc)"
        )
    step.params.update(
        kernel=(op.option("filterHeight"), op.option("filterWidth")),
        stride=(op.option("strideH"), op.option("strideW")),
        padding=flatbuffer.PADDINGS[op.option("padding")],
    )


_PREPARE_INT8 = {
    "ADD": _prepare_add,
    "CONCATENATION": _prepare_concatenation,
    "MEAN": _prepare_mean,
}
