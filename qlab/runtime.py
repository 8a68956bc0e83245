"""A small wrapper over the LiteRT interpreter: every .tflite in qlab runs here.

`predict` takes float data and handles the model's I/O types itself: it quantizes
inputs and dequantizes outputs with each tensor's own scale and zero point
(real = (q - zero_point) * scale). `invoke_raw` hands the interpreter whatever array
you give it, for teaching what happens when you skip that step.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

KERNELS = {
    "xnnpack": OpResolverType.AUTO,  # builtin kernels + the default XNNPACK delegate
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,  # optimized kernels, no delegate
    "reference": OpResolverType.BUILTIN_REF,  # reference kernels: slow, simple, for checking
}


class InvalidModelError(ValueError):
    """The bytes are not a .tflite flatbuffer the interpreter can load."""


def check_tflite(tflite: bytes) -> bytes:
    """Cheap structural check of a .tflite before the interpreter sees it."""
    if isinstance(tflite, (bytearray, memoryview)):
        tflite = bytes(tflite)
    if not isinstance(tflite, bytes):
        raise TypeError(f"expected the bytes of a .tflite, got {type(tflite).__name__}")
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise InvalidModelError(
            f"not a .tflite model ({len(tflite)} bytes, no 'TFL3' identifier): "
            "the file is corrupt or not a TFLite flatbuffer; convert the model again"
        )
    return tflite


class Runtime:
    """One loaded .tflite model, ready to run."""

    def __init__(self, tflite: bytes, kernels: str = "xnnpack", num_threads: int = 1,
                 keep_intermediates: bool = False):
        if kernels not in KERNELS:
            raise ValueError(f"unknown kernels {kernels!r}; valid: {', '.join(KERNELS)}")
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        self.tflite = check_tflite(tflite)
        self.kernels, self.num_threads = kernels, num_threads
        try:
            self.interpreter = Interpreter(
                model_content=self.tflite,
                num_threads=num_threads,
                experimental_op_resolver_type=KERNELS[kernels],
                experimental_preserve_all_tensors=keep_intermediates,
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InvalidModelError(
                f"LiteRT could not load this model ({len(self.tflite)} bytes): {exc}. "
                "The file is probably truncated or corrupt; convert the model again."
            ) from exc
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])

    # -- shapes and types -------------------------------------------------------------
    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"][1:])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self.output["dtype"])

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.sample_shape])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = batch

    def _check_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == len(self.sample_shape) and x.shape == self.sample_shape:
            x = x[np.newaxis]
        if x.ndim != len(self.sample_shape) + 1 or x.shape[1:] != self.sample_shape:
            raise ValueError(
                f"input has shape {x.shape}; this model takes a batch of shape "
                f"(n, {', '.join(map(str, self.sample_shape))}) or one sample of shape {self.sample_shape}"
            )
        if len(x) == 0:
            raise ValueError("input batch is empty")
        return x

    # -- quantization of I/O ----------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float data -> what the input tensor holds (q = round(x / scale) + zero_point)."""
        return quantize_array(x, self.input)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        """What the output tensor holds -> float (real = (q - zero_point) * scale)."""
        return dequantize_array(q, self.output)

    # -- running ----------------------------------------------------------------------
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run float data through the model and return float outputs, whatever its I/O types."""
        x = self._check_batch(x)
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"input must be numeric (float pixels), got dtype {x.dtype}")
        if np.issubdtype(x.dtype, np.integer) and self.input_dtype != np.float32:
            raise ValueError(
                f"predict() takes real-valued (float) input and quantizes it itself; got {x.dtype}. "
                "To hand the model integers you already quantized, use invoke_raw()."
            )
        return self.dequantize_output(self.invoke_raw(self.quantize_input(x.astype(np.float32))))

    def invoke_raw(self, x: np.ndarray) -> np.ndarray:
        """Set the input tensor to `x` as it is (dtype must match), invoke, return the raw output."""
        x = self._check_batch(x)
        if x.dtype != self.input_dtype:
            raise ValueError(
                f"invoke_raw() needs input of dtype {self.input_dtype} (this model's input tensor), "
                f"got {x.dtype}; quantize float data with quantize_input(), or call predict()"
            )
        self._resize(len(x))
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    def tensors(self) -> list[dict]:
        """The interpreter's details of every tensor (name, index, dtype, shape, quantization)."""
        return self.interpreter.get_tensor_details()


def quantize_array(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float -> the tensor's dtype with its scale and zero point (identity for float tensors)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return np.asarray(x, dtype=dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    q = round_half_away(np.asarray(x, dtype=np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_array(q: np.ndarray, detail: dict) -> np.ndarray:
    """The tensor's integers -> float32 with its scale and zero point (identity for floats)."""
    if np.dtype(detail["dtype"]).kind == "f":
        return np.asarray(q, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    return ((np.asarray(q, dtype=np.int64) - zero_point) * scale).astype(np.float32)


def round_half_away(v: np.ndarray) -> np.ndarray:
    """Round half away from zero, as TFLite's kernels do (NumPy rounds half to even)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)
