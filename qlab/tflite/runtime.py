"""A small wrapper over the LiteRT interpreter: every .tflite in qlab runs here.

`predict` takes float data and handles the model's I/O types itself: it quantizes
inputs and dequantizes outputs with each tensor's own scale and zero point
(`qlab.arith`). `invoke_raw` hands the interpreter whatever array you give it, for
teaching what happens when you skip that step.

A file whose input has a fixed batch (its shape signature) runs batches of that size; a batch-1
file (as an LSTM converts) runs any batch one sample at a time. A file with state (variable
tensors, as an LSTM's) has it reset before every invoke, so the same input gives the same output.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from qlab import arith, vocabulary
from qlab.tflite.flatbuffer import InvalidModelError, as_batch, check_tflite, variable_tensors

__all__ = ["KERNELS", "InvalidModelError", "Runtime"]

KERNELS = dict(
    zip(
        vocabulary.KERNELS,
        (
            OpResolverType.AUTO,  # builtin kernels + the default XNNPACK delegate
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,  # optimized kernels, no delegate
            OpResolverType.BUILTIN_REF,  # reference kernels: slow, simple, for checking
        ),
    )
)
"""Each kernel choice of `qlab.vocabulary.KERNELS` as LiteRT's op resolver type."""


class Runtime:
    """One loaded .tflite model, ready to run on LiteRT.

    Args:
        tflite: the model's bytes.
        kernels: a name from `qlab.vocabulary.KERNELS` ("xnnpack", "builtin", "reference").
        num_threads: threads the interpreter may use (1 or more).
        keep_intermediates: keep every tensor after `invoke` (LiteRT's
            `experimental_preserve_all_tensors`), for reading intermediate activations.

    Raises:
        ValueError: unknown kernels, a thread count below 1, or a model of several inputs or outputs.
        TypeError: `tflite` is not bytes-like.
        InvalidModelError: bytes LiteRT cannot load (truncated, corrupt, not a .tflite).
    """

    def __init__(
        self,
        tflite: bytes,
        kernels: str = "xnnpack",
        num_threads: int = 1,
        keep_intermediates: bool = False,
    ):
        if kernels not in KERNELS:
            raise ValueError(f"unknown kernels {kernels!r}; valid: {', '.join(KERNELS)}")
        if (
            isinstance(num_threads, bool)
            or not isinstance(num_threads, (int, np.integer))
            or num_threads < 1
        ):
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        self.tflite = check_tflite(tflite)
        self.kernels, self.num_threads = kernels, int(num_threads)
        try:
            self.interpreter = Interpreter(
                model_content=self.tflite,
                num_threads=self.num_threads,
                experimental_op_resolver_type=KERNELS[kernels],
                experimental_preserve_all_tensors=keep_intermediates,
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InvalidModelError(
                f"LiteRT could not load this model ({len(self.tflite)} bytes): {exc}. "
                "The file is probably truncated or corrupt; convert the model again."
            ) from exc
        inputs, outputs = (
            self.interpreter.get_input_details(),
            self.interpreter.get_output_details(),
        )
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"qlab runs models of one input and one output; this one has {len(inputs)} "
                f"input(s) and {len(outputs)} output(s) ({', '.join(d['name'] for d in inputs + outputs)})"
            )
        self.input, self.output = inputs[0], outputs[0]
        self._batch = int(self.input["shape"][0])
        signature = self.input.get("shape_signature")
        self.fixed_batch = (
            int(signature[0])
            if signature is not None and len(signature) and signature[0] > 0
            else None
        )
        self.stateful = variable_tensors(self.tflite) > 0

    # -- shapes and types -------------------------------------------------------------
    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one input sample (the input tensor's shape without its batch axis)."""
        return tuple(int(d) for d in self.input["shape"][1:])

    @property
    def input_dtype(self) -> np.dtype:
        """The input tensor's dtype: float32, int8 or uint8."""
        return np.dtype(self.input["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        """The output tensor's dtype: float32, int8 or uint8."""
        return np.dtype(self.output["dtype"])

    def reset(self) -> None:
        """Reset the model's state (its variable tensors) to the initial values, if it has any."""
        if self.stateful:
            self.interpreter.reset_all_variables()

    def _resize(self, batch: int) -> None:
        if batch != self._batch and self.fixed_batch is None:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.sample_shape])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = batch

    # -- quantization of I/O ----------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float data to what the input tensor holds: q = round(x / scale) + zero_point.

        Returns:
            array of the input tensor's dtype, the shape of `x` (float inputs: `x` as float32).

        Raises:
            ValueError: NaN in `x`, for an integer input tensor (see `qlab.arith.quantize`).
        """
        return _quantize_io(x, self.input)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        """What the output tensor holds to float: real = (q - zero_point) * scale.

        Returns:
            float32 array of the shape of `q`.
        """
        return _dequantize_io(q, self.output)

    # -- running ----------------------------------------------------------------------
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run float data through the model, whatever its I/O types.

        Args:
            x: a batch (n,) + sample_shape, or one sample, of real values.

        Returns:
            float32 array of the outputs, (n,) + the output's sample shape.

        Raises:
            ValueError: the wrong shape, an empty batch, non-numeric data, NaN, or integer data
                for a model with integer input (quantize it yourself and call `invoke_raw`).
        """
        x = as_batch(x, self.sample_shape)
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"input must be numeric (float pixels), got dtype {x.dtype}")
        if np.issubdtype(x.dtype, np.floating) and np.isnan(x).any():
            raise ValueError(
                "input contains NaN: a model has no meaningful output for it; clean the data first"
            )
        if np.issubdtype(x.dtype, np.integer) and self.input_dtype != np.float32:
            raise ValueError(
                f"predict() takes real-valued (float) input and quantizes it itself; got {x.dtype}. "
                "To hand the model integers you already quantized, use invoke_raw()."
            )
        return self.dequantize_output(self.invoke_raw(self.quantize_input(x.astype(np.float32))))

    def invoke_raw(self, x: np.ndarray, reset: bool = True) -> np.ndarray:
        """Set the input tensor to `x` as it is, invoke, return the raw output.

        The model's state, if it has any, is reset first (unless `reset` is False: then each
        invoke starts from the state the previous one left); a batch-1 file runs `x` one sample
        at a time.

        Returns:
            a copy of the output tensor: its own dtype, (n,) + the output's sample shape.

        Raises:
            ValueError: the wrong shape, an empty batch, a dtype other than the input tensor's, or a
                batch the file's fixed batch size does not allow.
        """
        x = as_batch(x, self.sample_shape)
        if x.dtype != self.input_dtype:
            raise ValueError(
                f"invoke_raw() needs input of dtype {self.input_dtype} (this model's input tensor), "
                f"got {x.dtype}; quantize float data with quantize_input(), or call predict()"
            )
        if self.fixed_batch is None or len(x) == self.fixed_batch:
            return self._invoke(x, reset)
        if self.fixed_batch == 1:
            return np.concatenate([self._invoke(sample[np.newaxis], reset) for sample in x])
        raise ValueError(
            f"this model takes batches of exactly {self.fixed_batch} samples (its input's shape "
            f"signature), got {len(x)}"
        )

    def _invoke(self, x: np.ndarray, reset: bool = True) -> np.ndarray:
        self._resize(len(x))
        if reset:
            self.reset()
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    def tensors(self) -> list[dict]:
        """The interpreter's details of every tensor.

        Returns:
            one dict per tensor: name, index, dtype, shape, quantization (scale, zero point) and
            quantization_parameters (per-axis scales and zero points), as LiteRT reports them.
        """
        return self.interpreter.get_tensor_details()


def _quantize_io(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return np.asarray(x, dtype=dtype)
    scale, zero_point = detail["quantization"]
    return arith.quantize(x, scale, zero_point, *arith.integer_range(dtype)).astype(dtype)


def _dequantize_io(q: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return np.asarray(q, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    return arith.dequantize(q, scale, zero_point).astype(np.float32)
