"""Run an integer-only .tflite in NumPy, op by op, with the runtime's own integer rules.

`kernels` picks whose rules to follow, with the names `qlab.tflite.runtime.Runtime` uses:

- "builtin": LiteRT's builtin kernels on x86-64 (aarch64 rounds otherwise: design notes). Conv and
  fully connected requantize with a 31-bit multiplier and shift in ruy (ties up); softmax reads a
  float32 exp table; depthwise conv, ADD and the spatial MEAN run NEON loops (through NEON_2_SSE)
  whose vector lanes and scalar tails round differently (`simd`).
- "reference": TFLite's reference kernels: gemmlowp's fixed point (ties away), except int8 fully
  connected, which rescales in double; softmax in fixed point.
- "xnnpack": the XNNPACK delegate: a float32 scale, rounded half to even; int8 softmax is not
  delegated, so it follows "builtin". No XNNPACK rules for depthwise conv, ADD, pooling,
  CONCATENATION and MEAN (`prepare.KERNEL_RULES`).

`run_float_shortcut` computes the same model as dequantize → float math → quantize, for `compare`
to set beside the integer runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qlab import arith, vocabulary
from qlab.intmath import fixedpoint, float_ops, integer_ops, ops, simd
from qlab.intmath.prepare import Step, check_integer_only, check_kernels, prepare
from qlab.tflite import flatbuffer, naming

KERNELS = tuple(vocabulary.KERNELS)
"""Whose integer rules the engine can follow (the names of `qlab.vocabulary.KERNELS`)."""


@dataclass
class IntegerRun:
    """What one run computed: `output`, the output tensor's integers ((n,) + sample shape), and
    `tensors`, the input and every op's output by tensor index, batch axis first."""

    output: np.ndarray
    tensors: dict[int, np.ndarray]
    kernels: str  # whose rules computed it: builtin, reference, xnnpack, float shortcut, LiteRT ...


class IntegerModel:
    """An integer-only .tflite (mode `integer_only` or `integer_only_uint8`), read and prepared to
    run in NumPy with the rules of `kernels`: `model` is the parsed file, `input` and `output` its
    tensors, `steps` one prepared `Step` per op in execution order.

    Raises:
        ValueError: unknown kernels, or a file with more or fewer than one subgraph.
        TypeError: `tflite` is not bytes-like.
        IntegerModelError: not integer-only, an op the engine lacks, or one whose rules it lacks for
            `kernels` (`prepare.KERNEL_RULES`).
        InvalidModelError: bytes that are not a .tflite."""

    def __init__(self, tflite: bytes, kernels: str = "builtin"):
        if kernels not in KERNELS:
            raise ValueError(f"unknown kernels {kernels!r}; valid: {', '.join(KERNELS)}")
        self.kernels = kernels
        self.model = flatbuffer.read(tflite)
        check_integer_only(self.model)
        self.input = self.model.tensors[self.model.inputs[0]]
        self.output = self.model.tensors[self.model.outputs[0]]
        labels = naming.labels(self.model)
        self.steps = [
            prepare(self.model, op, labels.get(op.index, op.name.lower())) for op in self.model.ops
        ]
        check_kernels(self.steps, kernels)

    # -- input and output -------------------------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Returns real inputs as the input tensor's integers, q = round(x / scale) + zero_point,
        x's shape. Raises ValueError for per-axis parameters that do not fit `x`."""
        return self.input.quantize(x)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        """Returns the output integers as real values, float32, q's shape."""
        return self.output.dequantize(q)

    def check_input(self, q_input) -> np.ndarray:
        """Returns `q_input` as a batch of the input tensor's dtype, (n,) + sample shape, n >= 1.

        Raises ValueError for another dtype (the message shows how to quantize), another shape,
        or an empty batch."""
        q = np.asarray(q_input)
        if q.dtype != self.input.dtype:
            zp = int(self.input.zero_point[0])
            raise ValueError(
                f"run_integer needs input of dtype {self.input.dtype} (this model's input tensor "
                f"{self.input.name!r}), got {q.dtype}. Quantize float data first: "
                f"q = round(x / {float(self.input.scale[0]):.6g}) "
                f"{'-' if zp < 0 else '+'} {abs(zp)}, "
                "e.g. IntegerModel(tflite).quantize_input(x)"
            )
        return flatbuffer.as_batch(q, self.input.shape[1:])

    # -- running ----------------------------------------------------------------------------------
    def run(self, q_input, inputs_from: dict | None = None) -> IntegerRun:
        """Every op in order with this model's integer rules.

        With `inputs_from` (another run's `tensors`), each op reads its inputs from there instead of
        from the ops here, so the differences belong to each op alone.

        Returns an `IntegerRun` labelled with `kernels`.

        Raises:
            ValueError: an input of another dtype or shape, or an empty batch (`check_input`).
            KeyError: `inputs_from` lacks a tensor an op reads."""
        return self._run(q_input, inputs_from, self._apply, self.kernels)

    def run_float_shortcut(
        self, q_input, inputs_from: dict | None = None, dtype=np.float32
    ) -> IntegerRun:
        """Each op as dequantize -> float math (in `dtype`) -> quantize, integer tensors in between.

        Each op's float result is quantized to its output's grid (half away, clamped), so the only
        differences from `run` are the integer rules themselves.

        Returns an `IntegerRun` labelled "float shortcut".

        Raises:
            ValueError: as for `run`.
            NotImplementedError: an op without a float version (`float_ops.compute`)."""
        return self._run(
            q_input,
            inputs_from,
            lambda step, xs: self._apply_float(step, xs, dtype),
            "float shortcut",
        )

    def _run(self, q_input, inputs_from, apply, label) -> IntegerRun:
        q = self.check_input(q_input)
        tensors = {self.input.index: q}
        for step in self.steps:
            source = tensors if inputs_from is None else inputs_from
            activations = [source[t.index] for t in step.inputs if t is not None and t.data is None]
            tensors[step.output.index] = apply(step, activations)
        return IntegerRun(tensors[self.output.index], tensors, label)

    def accumulate(self, step: Step, x: np.ndarray) -> np.ndarray:
        """Returns the int32 accumulators of a conv, depthwise conv or fully connected step, as
        int64: (n, out_h, out_w, out_channels), or (rows, units) for FULLY_CONNECTED.

        Raises:
            ValueError: a conv input whose channels do not match the weights.
            NotImplementedError: a conv padding other than SAME or VALID."""
        p = step.params
        conv = {
            "CONV_2D": integer_ops.conv2d_accumulate,
            "DEPTHWISE_CONV_2D": integer_ops.depthwise_conv2d_accumulate,
        }.get(step.op.name)
        if conv is not None:
            return conv(
                x,
                p["input_zero_point"],
                p["weights"],
                p["bias"],
                p["stride"],
                p["dilation"],
                p["padding"],
            )
        return integer_ops.fully_connected_accumulate(
            x, p["input_zero_point"], p["weights"], p["bias"], p["weights_zero_point"]
        )

    def requantize(self, step: Step, acc: np.ndarray) -> np.ndarray:
        """Returns int32 accumulators in the output type: rescaled by this model's rule, plus the
        zero point, clamped to the fused activation's range.

        The rescale, per `kernels`:

        - "builtin": multiplier and shift, double rounding, ties up (ruy/kernel_avx2_fma.cc,
          kernel_avx512.cc); DEPTHWISE_CONV_2D instead ends in optimized_ops::Quantize
          (optimized/optimized_ops.h, via
          optimized_integer_ops::depthwise_conv::DepthwiseConvGeneral): 8 channels at a time ties
          up, the last out_channels % 8 ties away (`simd`).
        - "reference": multiplier and shift, ties away (MultiplyByQuantizedMultiplier,
          tflite/kernels/internal/common.cc; reference_integer_ops::ConvPerChannel,
          DepthwiseConvPerChannel); int8 FULLY_CONNECTED multiplies by the real multiplier in double
          and rounds half away (reference_integer_ops::FullyConnected(PerChannel) with float scales,
          from tflite/kernels/fully_connected.cc).
        - "xnnpack": float32 scale, ties to even (src/operators/convolution-nhwc.c,
          fully-connected-nc.c; `fixedpoint.requantize_fp32`)."""
        p = step.params
        if self.kernels == "xnnpack":
            scaled = fixedpoint.requantize_fp32(acc, p["fp32_scale"])
        elif self.kernels == "builtin" and step.op.name == "DEPTHWISE_CONV_2D":
            vector = simd.vector_part(acc.shape[-1], simd.LANES["DEPTHWISE_CONV_2D"])
            scaled = simd.multiply_by_quantized_multiplier_simd(
                acc, p["multiplier"], p["shift"], vector
            )
        elif self.kernels == "reference" and step.op.name == "FULLY_CONNECTED":
            # reference_integer_ops::FullyConnected(PerChannel) rescales in double, rounds half away
            scaled = arith.round_half_away(acc * p["real_multiplier"]).astype(np.int64)
        else:
            ties = "up" if self.kernels == "builtin" else "away"
            scaled = fixedpoint.multiply_by_quantized_multiplier(
                acc, p["multiplier"], p["shift"], ties
            )
        return np.clip(scaled + p["output_zero_point"], p["act_min"], p["act_max"]).astype(
            step.output.dtype
        )

    def _apply(self, step: Step, inputs: list) -> np.ndarray:
        name, x = step.op.name, inputs[0]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            return self.requantize(step, self.accumulate(step, x))
        if (
            name == "FULLY_CONNECTED"
        ):  # (batch, units), or the input's leading axes with keepNumDims
            return self.requantize(step, self.accumulate(step, x)).reshape(
                len(x), *step.output.shape[1:]
            )
        return ops.apply(step, inputs, self.kernels)

    def _apply_float(self, step: Step, activations: list, dtype) -> np.ndarray:
        if step.op.name == "RESHAPE":
            return ops.reshape(activations[0], step.output)
        given = iter(activations)  # every input real (constants too), in the op's order
        inputs = [
            None if t is None else _real(t, next(given) if t.data is None else t.data, dtype)
            for t in step.inputs
        ]
        if step.op.name == "QUANTIZE":  # between two grids: the real values stay as they are
            return step.output.quantize(inputs[0])
        return step.output.quantize(float_ops.compute(step.op, inputs, step.output.shape))


def run_integer(
    tflite: bytes, q_input, kernels: str = "builtin", inputs_from: dict | None = None
) -> IntegerRun:
    """Run an integer-only .tflite on `q_input` (already quantized) in NumPy: `IntegerModel.run`.

    Returns the `IntegerRun`.

    Raises:
        ValueError: unknown kernels, or an input of another dtype or shape, or an empty batch.
        IntegerModelError: not integer-only, an op the engine lacks, or one whose rules it lacks for
            `kernels`.
        InvalidModelError: bytes that are not a .tflite."""
    return IntegerModel(tflite, kernels).run(q_input, inputs_from)


def run_float_shortcut(
    tflite: bytes, q_input, inputs_from: dict | None = None, dtype=np.float32
) -> IntegerRun:
    """The model as dequantize -> float math -> quantize: `IntegerModel.run_float_shortcut`.

    Returns the `IntegerRun` labelled "float shortcut".

    Raises:
        ValueError: an input of another dtype or shape, or an empty batch.
        IntegerModelError: a model that is not integer-only, or an op the engine lacks.
        InvalidModelError: bytes that are not a .tflite."""
    return IntegerModel(tflite).run_float_shortcut(q_input, inputs_from, dtype)


def _real(tensor: flatbuffer.Tensor, values: np.ndarray, dtype):
    """A quantized tensor's real values in `dtype`; an unquantized one (axes, shapes) as it is."""
    return tensor.dequantize(values, dtype) if tensor.quantized else values
