"""Reading an integer-only .tflite for the engine: which models it can run, and the integer
parameters each kernel computes in its Prepare step, before any input arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qlab import naming, tflite_file
from qlab.intmath import fixedpoint
from qlab.vocabulary import WEIGHTED_OPS

IMPLEMENTED = ("CONV_2D", "FULLY_CONNECTED", "QUANTIZE", "RESHAPE", "SOFTMAX")
"""The ops the engine runs."""
INTEGER_TYPES = ("INT8", "UINT8")
"""The tensor types the engine runs."""


class IntegerModelError(ValueError):
    """The model cannot run on the integer engine: not integer-only, or an op it lacks."""


@dataclass
class Step:
    """One op, prepared: its tensors and the integer parameters its kernel computes before running.

    Attributes:
        op: the `qlab.tflite_file.Op`.
        layer: a short name for tables (conv1, dense, softmax, ...).
        inputs: a `qlab.tflite_file.Tensor` per input (None for an absent optional one).
        output: its output tensor.
        params: what `prepare` computed; for CONV_2D and FULLY_CONNECTED: input_zero_point,
            output_zero_point, weights (int8), bias (int32 or None), per_channel,
            real_multiplier (float64, per output channel), multiplier and shift (int64, per
            output channel), fp32_scale (float32, XNNPACK's), act_min and act_max; CONV_2D adds
            stride, dilation, padding; FULLY_CONNECTED adds weights_zero_point. SOFTMAX:
            input_scale, beta, output_scale, output_zero_point. QUANTIZE: input_zero_point,
            output_zero_point, multiplier, shift. RESHAPE: nothing.
    """

    op: tflite_file.Op
    layer: str  # a short name for tables: conv1, dense, softmax, ...
    inputs: list  # tflite_file.Tensor for each input (None for an absent optional one)
    output: tflite_file.Tensor
    params: dict = field(default_factory=dict)


def check_integer_only(model: tflite_file.ModelFile) -> None:
    """Refuse float, dynamic-range and 16-bit models, and ops the engine lacks, saying which.

    Raises:
        IntegerModelError: a float tensor (naming the kind of model it is), more than one input
            or output, or ops outside `IMPLEMENTED`.
    """
    io = [model.tensors[i] for i in model.inputs + model.outputs]
    activations = [model.tensors[o] for op in model.ops for o in op.outputs]
    wrong = next((t for t in io + activations if t.type not in INTEGER_TYPES), None)
    if wrong is not None:
        where = ("input" if wrong.index in model.inputs
                 else "output" if wrong.index in model.outputs else "tensor")
        raise IntegerModelError(
            f"run_integer needs an integer-only model (mode 'integer_only' or 'integer_only_uint8'); "
            f"this model has {wrong.type.lower()} {where} {wrong.name!r}{_kind(model)}. "
            "Convert it with qlab.quantize.quantize(model, 'integer_only', calibration).")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise IntegerModelError(f"run_integer takes models with one input and one output; this one has "
                                f"{len(model.inputs)} and {len(model.outputs)}")
    missing = sorted({op.name for op in model.ops if op.name not in IMPLEMENTED})
    if missing:
        raise IntegerModelError(
            f"op{'s' * (len(missing) > 1)} {', '.join(missing)} {'are' if len(missing) > 1 else 'is'} "
            f"not implemented by qlab.intmath; implemented: {', '.join(IMPLEMENTED)}. Run this model "
            "on LiteRT only (qlab.runtime.Runtime), or build it from layers that convert to these ops.")


def _kind(model: tflite_file.ModelFile) -> str:
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


def prepare(model: tflite_file.ModelFile, op: tflite_file.Op, label: str | None = None) -> Step:
    """The parameters each kernel computes in its Prepare, before any input arrives.

    For conv and fully connected ops: the real multiplier S_in·S_w/S_out per output channel
    (float64, as PopulateConvolutionQuantizationParams in tflite/kernels/kernel_util.cc), its
    31-bit multiplier and shift (`fixedpoint.quantize_multiplier`; per-tensor fully connected
    takes S_in·S_w in float32 first, as GetQuantizedConvolutionMultipler in kernel_util.cc),
    XNNPACK's float32 scale (S_in·S_w/S_out in float32, src/operators/convolution-nhwc.c,
    fully-connected-nc.c), the fused activation's clamp range (CalculateActivationRangeQuantized,
    kernel_util.cc), zero points, weights and bias. For SOFTMAX: input scale, beta and the
    output grid (int8, 1/256 and -128, as SoftmaxPrepare in tflite/kernels/activations.cc). For
    QUANTIZE: the multiplier and shift between the two grids (input scale / output scale in
    double, as Prepare in tflite/kernels/quantize.cc).

    Returns:
        the `Step`, its `params` filled (keys listed on `Step`).

    Raises:
        IntegerModelError: tensor types or grids the kernels do not accept (named with the op):
            a float or unquantized input, conv or fully connected without int8 input and
            weights and an int32 bias, int8 conv weights with a non-zero zero_point, shuffled
            fully connected weights, a SOFTMAX whose output grid is not scale 1/256 and
            zero_point -128.
        NotImplementedError: a fused activation other than NONE, RELU, RELU6, RELU_N1_TO_1.
    """
    inputs = [model.tensors[i] if i >= 0 else None for i in op.inputs]
    label = label or naming.labels(model).get(op.index, op.name.lower())
    step = Step(op, label, inputs, model.tensors[op.outputs[0]])
    x, out = inputs[0], step.output
    if x.type not in INTEGER_TYPES or not x.quantized:
        raise IntegerModelError(f"{op.name} (op {op.index}) has input {x.name!r} of type {x.type}; "
                                "the engine runs int8 and uint8 tensors only")
    s_in, s_out = float(x.scale[0]), float(out.scale[0])
    zp_in, zp_out = int(x.zero_point[0]), int(out.zero_point[0])
    p = step.params
    if op.name in WEIGHTED_OPS:
        w, b = inputs[1], inputs[2]
        if x.type != "INT8" or w.type != "INT8" or (b is not None and b.type != "INT32"):
            raise IntegerModelError(f"{op.name} (op {op.index}) must have int8 input and weights and an "
                                    f"int32 bias; it has {x.type}, {w.type}, {b.type if b else 'no bias'}")
        per_channel = w.per_axis
        channels = w.shape[0]
        w_scale = np.broadcast_to(w.scale.astype(np.float64), (channels,))
        real = s_in * w_scale / s_out  # PopulateConvolutionQuantizationParams: double throughout
        if op.name == "FULLY_CONNECTED" and not per_channel:
            # GetQuantizedConvolutionMultipler (kernel_util.cc) takes the product in float32
            multiplier, shift = fixedpoint.quantize_multiplier(float(np.float32(x.scale[0]) * w.scale[0]) / s_out)
        else:
            multiplier, shift = fixedpoint.quantize_multiplier(real)
        act_min, act_max = fixedpoint.activation_range(op.activation, out.scale[0], zp_out, out.dtype)
        p.update(input_zero_point=zp_in, output_zero_point=zp_out, weights=w.data,
                 bias=None if b is None else b.data, per_channel=per_channel, real_multiplier=real,
                 multiplier=multiplier, shift=shift, act_min=act_min, act_max=act_max,
                 fp32_scale=np.float32(x.scale[0]) * w.scale.astype(np.float32) / np.float32(out.scale[0]))
        if op.name == "CONV_2D":
            if np.any(w.zero_point != 0):
                raise IntegerModelError(
                    f"CONV_2D (op {op.index}) has int8 weights with a non-zero zero point")
            p.update(stride=(op.option("strideH"), op.option("strideW")),
                     dilation=(op.option("dilationHFactor"), op.option("dilationWFactor")),
                     padding=tflite_file.PADDINGS[op.option("padding")])
        else:
            if op.option("weightsFormat", 0) != 0:
                raise IntegerModelError(f"FULLY_CONNECTED (op {op.index}) uses a shuffled weights format")
            p["weights_zero_point"] = 0 if per_channel else int(w.zero_point[0])
    elif op.name == "SOFTMAX":
        if x.type != "INT8" or out.type != "INT8" or zp_out != -128 or abs(s_out * 256 - 1) > 1e-3:
            raise IntegerModelError(f"SOFTMAX (op {op.index}) must map int8 to int8 with output scale 1/256 "
                                    f"and zero point -128; it has {x.type} -> {out.type}, {s_out}, {zp_out}")
        p.update(input_scale=s_in, beta=float(op.option("beta", 1.0)), output_scale=s_out,
                 output_zero_point=zp_out)
    elif op.name == "QUANTIZE":
        multiplier, shift = fixedpoint.quantize_multiplier(s_in / s_out)
        p.update(input_zero_point=zp_in, output_zero_point=zp_out, multiplier=multiplier, shift=shift)
    return step
