"""A small wrapper over the LiteRT interpreter: every .tflite in qlab runs here.

`predict` quantizes inputs and dequantizes outputs itself; `invoke_raw` hands the interpreter the
array as it is. A file with a fixed batch runs batches of that size (batch 1: any batch, one sample
at a time). A file with state (an LSTM's) has it reset before every invoke.
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
    """One loaded .tflite model, ready to run on LiteRT. `keep_intermediates` keeps every tensor
    after `invoke` (LiteRT's `experimental_preserve_all_tensors`).

    Raises ValueError for unknown kernels, threads below 1, or several inputs or outputs;
    TypeError if `tflite` is not bytes-like; InvalidModelError for bytes LiteRT cannot load.
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
                f"input(s) and {len(outputs)} output(s) "
                f"({', '.join(d['name'] for d in inputs + outputs)})"
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
        """Returns `x` as the input tensor holds it (float inputs: float32).

        Raises ValueError for NaN in `x` and an integer input (`qlab.arith.quantize`).
        """
        return _quantize_io(x, self.input)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        """Returns the output tensor's values as float32 reals."""
        return _dequantize_io(q, self.output)

    # -- running ----------------------------------------------------------------------
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Returns float32 outputs, (n,) + output sample shape, for real-valued `x` (a batch or
        one sample), whatever the model's I/O types.

        Raises ValueError for the wrong shape, an empty batch, non-numeric data, NaN or ±inf, or
        integer data for a model with integer input (use `invoke_raw`).
        """
        x = as_batch(x, self.sample_shape)
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"input must be numeric (float pixels), got dtype {x.dtype}")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise ValueError(
                "input contains NaN or infinity: a model has no meaningful output for it (an int8 "
                "file would clip infinity to its range silently); clean the data first"
            )
        if np.issubdtype(x.dtype, np.integer) and self.input_dtype != np.float32:
            raise ValueError(
                "predict() takes real-valued (float) input and quantizes it itself; "
                f"got {x.dtype}. "
                "To hand the model integers you already quantized, use invoke_raw()."
            )
        return self.dequantize_output(self.invoke_raw(self.quantize_input(x.astype(np.float32))))

    def invoke_raw(self, x: np.ndarray, reset: bool = True) -> np.ndarray:
        """Invokes on `x` as it is. Returns a copy of the raw output, (n,) + its sample shape.

        State is reset first unless `reset` is False. Raises ValueError for the wrong shape, an
        empty batch, a dtype other than the input tensor's, or a batch the file does not allow.
        """
        x = as_batch(x, self.sample_shape)
        if x.dtype != self.input_dtype:
            raise ValueError(
                f"invoke_raw() needs input of dtype {self.input_dtype} "
                "(this model's input tensor), "
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
        """Returns LiteRT's details of every tensor: name, index, dtype, shape, quantization and
        quantization_parameters (per-axis)."""
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
