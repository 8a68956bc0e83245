"""Run an integer-only .tflite in NumPy, op by op, with the runtime's own integer rules.

`run_integer(tflite, q_input)` returns the int8 output and every intermediate int8 tensor.
`kernels` picks whose rules to follow, with the names `qlab.runtime.Runtime` uses:

- "builtin": LiteRT's builtin kernels on x86-64. Conv and fully connected requantize with a
  31-bit multiplier and a shift in ruy (ties rounded up); softmax reads a float32 exp table.
- "reference": TFLite's reference kernels. gemmlowp's fixed point (ties away from zero), except
  int8 fully connected, which rescales in double; softmax is integer-only fixed point.
- "xnnpack": the XNNPACK delegate. Accumulators are scaled by a float32 scale and rounded half to
  even; int8 softmax is not delegated, so it follows "builtin".

`run_float_shortcut` computes the same model as dequantize → float math → quantize, and
`run_litert` reads every tensor LiteRT computed, so that `compare` can set them side by side.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from qlab import intmath_ops as ops
from qlab import tflite_file
from qlab.capture import layer_name
from qlab.runtime import Runtime, dequantize_array, quantize_array, round_half_away

KERNELS = ("builtin", "reference", "xnnpack")
IMPLEMENTED = ("CONV_2D", "FULLY_CONNECTED", "QUANTIZE", "RESHAPE", "SOFTMAX")
INTEGER_TYPES = ("INT8", "UINT8")


class IntegerModelError(ValueError):
    """The model cannot run on the integer engine: not integer-only, or an op it lacks."""


@dataclass
class Step:
    """One op, prepared: its tensors and the integer parameters its kernel computes before running."""

    op: tflite_file.Op
    layer: str  # a short name for tables: conv1, dense, softmax, ...
    inputs: list  # tflite_file.Tensor for each input (None for an absent optional one)
    output: tflite_file.Tensor
    params: dict = field(default_factory=dict)


@dataclass
class IntegerRun:
    """What one run computed: the output, and every activation tensor by its index in the file."""

    output: np.ndarray
    tensors: dict[int, np.ndarray]
    kernels: str  # whose rules computed it: builtin, reference, xnnpack, float shortcut, LiteRT ...


class IntegerModel:
    """An integer-only .tflite, read and prepared for running in NumPy."""

    def __init__(self, tflite: bytes, kernels: str = "builtin"):
        if kernels not in KERNELS:
            raise ValueError(f"unknown kernels {kernels!r}; valid: {', '.join(KERNELS)}")
        self.kernels = kernels
        self.model = tflite_file.read(tflite)
        check_integer_only(self.model)
        self.input = self.model.tensors[self.model.inputs[0]]
        self.output = self.model.tensors[self.model.outputs[0]]
        self.steps = [prepare(self.model, op) for op in self.model.ops]

    # -- input and output -------------------------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float pixels -> the input tensor's integers: q = round(x / scale) + zero_point."""
        return quantize_array(x, self.input.detail)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        """The output integers -> probabilities: real = (q - zero_point) * scale."""
        return dequantize_array(q, self.output.detail)

    def check_input(self, q_input) -> np.ndarray:
        """A batch of the input tensor's dtype and shape (one sample gets a batch axis)."""
        q = np.asarray(q_input)
        sample = self.input.shape[1:]
        if q.dtype != self.input.dtype:
            zp = int(self.input.zero_point[0])
            raise ValueError(
                f"run_integer needs input of dtype {self.input.dtype} (this model's input tensor "
                f"{self.input.name!r}), got {q.dtype}. Quantize float data first: "
                f"q = round(x / {float(self.input.scale[0]):.6g}) {'-' if zp < 0 else '+'} {abs(zp)}, "
                "e.g. IntegerModel(tflite).quantize_input(x)")
        if q.shape == sample:
            q = q[np.newaxis]
        if q.shape[1:] != sample or len(q) == 0:
            raise ValueError(f"input has shape {q.shape}; this model takes a non-empty batch of shape "
                             f"(n, {', '.join(map(str, sample))}) or one sample of shape {sample}")
        return q

    # -- running ----------------------------------------------------------------------------------
    def run(self, q_input, inputs_from: dict | None = None) -> IntegerRun:
        """Every op in order with this model's integer rules.

        With `inputs_from` (the tensors of another run), each op reads its input from there
        instead of from the previous op here: the differences then belong to each op alone.
        """
        return self._run(q_input, inputs_from, self._apply, self.kernels)

    def run_float_shortcut(self, q_input, inputs_from: dict | None = None,
                           dtype=np.float32) -> IntegerRun:
        """Each op as dequantize -> float math -> quantize, int8 tensors in between."""
        return self._run(q_input, inputs_from, lambda step, x: self._apply_float(step, x, dtype),
                         "float shortcut")

    def _run(self, q_input, inputs_from, apply, label) -> IntegerRun:
        q = self.check_input(q_input)
        tensors = {self.input.index: q}
        for step in self.steps:
            source = tensors if inputs_from is None else inputs_from
            tensors[step.output.index] = apply(step, source[step.op.inputs[0]])
        return IntegerRun(tensors[self.output.index], tensors, label)

    def accumulate(self, step: Step, x: np.ndarray) -> np.ndarray:
        """The int32 accumulators of a conv or fully connected step (before requantization)."""
        p = step.params
        if step.op.name == "CONV_2D":
            return ops.conv2d_accumulate(x, p["input_zero_point"], p["weights"], p["bias"],
                                         p["stride"], p["dilation"], p["padding"])
        return ops.fully_connected_accumulate(x, p["input_zero_point"], p["weights"], p["bias"],
                                              p["weights_zero_point"])

    def requantize(self, step: Step, acc: np.ndarray) -> np.ndarray:
        """int32 accumulators -> the output type: rescale by this model's rule, add the zero
        point, clamp to the fused activation's range (a ReLU is the lower clamp)."""
        p = step.params
        if self.kernels == "xnnpack":
            scaled = ops.requantize_fp32(acc, p["fp32_scale"])
        elif self.kernels == "reference" and step.op.name == "FULLY_CONNECTED":
            # reference_integer_ops::FullyConnected(PerChannel) rescales in double, rounds half away
            scaled = round_half_away(acc * p["real_multiplier"]).astype(np.int64)
        else:
            ties = "up" if self.kernels == "builtin" else "away"
            scaled = ops.multiply_by_quantized_multiplier(acc, p["multiplier"], p["shift"], ties)
        return np.clip(scaled + p["output_zero_point"], p["act_min"], p["act_max"]).astype(step.output.dtype)

    def _apply(self, step: Step, x: np.ndarray) -> np.ndarray:
        name, p = step.op.name, step.params
        if name == "CONV_2D":
            return self.requantize(step, self.accumulate(step, x))
        if name == "FULLY_CONNECTED":  # (batch, units), or the input's leading axes with keepNumDims
            return self.requantize(step, self.accumulate(step, x)).reshape(len(x), *step.output.shape[1:])
        if name == "RESHAPE":
            return _reshape(x, step.output)
        if name == "SOFTMAX":
            if self.kernels == "reference":
                return ops.softmax_fixed_point(x, p["input_scale"], p["beta"], step.output.dtype)
            return ops.softmax_lut(x, p["input_scale"], p["beta"], p["output_scale"],
                                   p["output_zero_point"], step.output.dtype)
        # QUANTIZE between int8 and uint8: MultiplyByQuantizedMultiplier (common.cc) in every kernel
        scaled = ops.multiply_by_quantized_multiplier(x.astype(np.int64) - p["input_zero_point"],
                                                      p["multiplier"], p["shift"], "away")
        info = np.iinfo(step.output.dtype)
        return np.clip(scaled + p["output_zero_point"], info.min, info.max).astype(step.output.dtype)

    def _apply_float(self, step: Step, x: np.ndarray, dtype) -> np.ndarray:
        if step.op.name == "RESHAPE":
            return _reshape(x, step.output)
        real = _dequantize(x, step.inputs[0], dtype)
        weights = bias = None
        if step.op.name in ("CONV_2D", "FULLY_CONNECTED"):
            w = step.inputs[1]
            axes = (-1,) + (1,) * (len(w.shape) - 1)
            weights = ((w.data.astype(dtype) - w.zero_point.reshape(axes).astype(dtype))
                       * w.scale.reshape(axes).astype(dtype))
            b = step.inputs[2]
            bias = None if b is None else b.data.astype(dtype) * b.scale.astype(dtype)
        real = ops.float_op(step.op, real, weights, bias, step.output.shape)
        return quantize_array(real, step.output.detail)


def run_integer(tflite: bytes, q_input, kernels: str = "builtin",
                inputs_from: dict | None = None) -> IntegerRun:
    """Run an integer-only .tflite on `q_input` (its input dtype, already quantized) in NumPy."""
    return IntegerModel(tflite, kernels).run(q_input, inputs_from)


def run_float_shortcut(tflite: bytes, q_input, inputs_from: dict | None = None,
                       dtype=np.float32) -> IntegerRun:
    """The same model as dequantize -> float math -> quantize, for comparison with the integer rules."""
    return IntegerModel(tflite).run_float_shortcut(q_input, inputs_from, dtype)


def run_litert(tflite: bytes, q_input, kernels: str = "builtin") -> IntegerRun:
    """Every activation tensor LiteRT computed for `q_input`, read back after one invoke.

    With intermediates kept, LiteRT hands each op to XNNPACK as its own partition, so every
    tensor is written; the output is the same as with the whole graph in one partition.
    """
    model = IntegerModel(tflite)
    q = model.check_input(q_input)
    with warnings.catch_warnings():  # keeping intermediates is the point here, not a debugging slip
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        rt = Runtime(tflite, kernels=kernels, keep_intermediates=True)
    rt.invoke_raw(q)
    indices = [model.input.index] + [s.output.index for s in model.steps]
    tensors = {i: rt.interpreter.get_tensor(i).copy() for i in indices}
    return IntegerRun(tensors[model.output.index], tensors, f"LiteRT {kernels}")


def compare(tflite: bytes, a: IntegerRun, b: IntegerRun):
    """One row per op: how many of its output values differ between two runs, and by how many LSB."""
    import pandas as pd

    rows = []
    for step in IntegerModel(tflite).steps:
        i = step.output.index
        diff = np.abs(a.tensors[i].astype(np.int64) - b.tensors[i].astype(np.int64))
        rows.append({"op": step.op.name, "layer": step.layer, "tensor": i, "values": diff.size,
                     "different": int(np.count_nonzero(diff)), "max_lsb": int(diff.max(initial=0))})
    return pd.DataFrame(rows)


# -- reading and checking the model --------------------------------------------------------------
def check_integer_only(model: tflite_file.ModelFile) -> None:
    """Refuse float, dynamic-range and 16-bit models, and ops the engine lacks, saying which."""
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


def prepare(model: tflite_file.ModelFile, op: tflite_file.Op) -> Step:
    """The parameters each kernel computes in its Prepare, before any input arrives."""
    inputs = [model.tensors[i] if i >= 0 else None for i in op.inputs]
    step = Step(op, layer_name(model, op), inputs, model.tensors[op.outputs[0]])
    x, out = inputs[0], step.output
    if x.type not in INTEGER_TYPES or not x.quantized:
        raise IntegerModelError(f"{op.name} (op {op.index}) has input {x.name!r} of type {x.type}; "
                                "the engine runs int8 and uint8 tensors only")
    s_in, s_out = float(x.scale[0]), float(out.scale[0])
    zp_in, zp_out = int(x.zero_point[0]), int(out.zero_point[0])
    p = step.params
    if op.name in ("CONV_2D", "FULLY_CONNECTED"):
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
            multiplier, shift = ops.quantize_multiplier(float(np.float32(x.scale[0]) * w.scale[0]) / s_out)
        else:
            multiplier, shift = ops.quantize_multiplier(real)
        act_min, act_max = ops.activation_range(op.activation, out.scale[0], zp_out, out.dtype)
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
        multiplier, shift = ops.quantize_multiplier(s_in / s_out)
        p.update(input_zero_point=zp_in, output_zero_point=zp_out, multiplier=multiplier, shift=shift)
    return step


def _dequantize(q: np.ndarray, t: tflite_file.Tensor, dtype) -> np.ndarray:
    return (q.astype(dtype) - dtype(t.zero_point[0])) * dtype(t.scale[0])


def _reshape(x: np.ndarray, out: tflite_file.Tensor) -> np.ndarray:
    """RESHAPE copies the integers as they are; the stored shape's batch becomes the run's."""
    return x.reshape(len(x), *out.shape[1:])
