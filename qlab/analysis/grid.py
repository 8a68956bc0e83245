"""The quantization grid: which real values an integer tensor can hold, and how values land on it.

A grid is `bits`, signed or not, a `scale` and `zero_point` per tensor or per channel (`axis`),
and whether the most negative level is left out (`narrow_range`, as int8 weights);
real = (q - zero_point) * scale, as everywhere in qlab. `fit` chooses a grid the way TFLite's
converter does, so that its scales equal the file's; `of_tensor` reads the grid a .tflite
stores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qlab import arith

BITS = range(2, 17)  # what `fit` accepts: 2..16 bits


@dataclass(frozen=True, eq=False)
class Grid:
    """Integer levels qmin..qmax and their real values, per tensor or per channel along `axis`."""

    bits: int
    # real units per step (LSB): float64 copies of float32 scales, one per channel (or one)
    scale: np.ndarray
    zero_point: np.ndarray  # int64, same length as scale
    signed: bool = True
    narrow_range: bool = False
    axis: int | None = None  # None: one scale for the whole tensor

    @property
    def qmin(self) -> int:
        """The lowest level (int): -2^(bits-1) signed, 0 unsigned, one more with narrow_range."""
        low = -(1 << (self.bits - 1)) if self.signed else 0
        return low + int(self.narrow_range)

    @property
    def qmax(self) -> int:
        """The highest level (int): 2^(bits-1) - 1 signed, 2^bits - 1 unsigned."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def levels(self) -> int:
        """How many integers the grid has (int: 255 for narrow int8, 256 for int8)."""
        return self.qmax - self.qmin + 1

    @property
    def per_axis(self) -> bool:
        """True if the grid has one scale and zero point per channel along `axis`."""
        return self.axis is not None

    @property
    def symmetric(self) -> bool:
        """Zero sits at the middle level (zero point 0 for signed, 2^(bits-1) for unsigned)."""
        mid = 0 if self.signed else 1 << (self.bits - 1)
        return bool(np.all(self.zero_point == mid))

    @property
    def low(self) -> np.ndarray:
        """The smallest real value on the grid: float64, one per channel (one for per-tensor)."""
        return arith.dequantize(
            np.full(self.scale.size, self.qmin), self.scale, self.zero_point, axis=0
        )

    @property
    def high(self) -> np.ndarray:
        """The largest real value on the grid: float64, one per channel (one for per-tensor)."""
        return arith.dequantize(
            np.full(self.scale.size, self.qmax), self.scale, self.zero_point, axis=0
        )

    def channel(self, c: int) -> Grid:
        """Returns channel `c` of a per-axis grid as a per-tensor `Grid` (a per-tensor grid:
        itself). Raises IndexError for a channel the grid does not have."""
        if not self.per_axis:
            return self
        if not 0 <= c < self.scale.size:
            raise IndexError(
                f"no channel {c}: this grid has {self.scale.size}, 0 to {self.scale.size - 1}"
            )
        return Grid(
            self.bits,
            self.scale[c : c + 1],
            self.zero_point[c : c + 1],
            self.signed,
            self.narrow_range,
            None,
        )

    def _check(self, x: np.ndarray) -> None:
        if self.per_axis and (x.ndim <= self.axis or x.shape[self.axis] != self.scale.size):
            raise ValueError(
                f"this grid has {self.scale.size} channels along axis {self.axis}; the tensor has "
                f"shape {x.shape}"
            )

    def _params(self, values: np.ndarray) -> np.ndarray:
        return values if self.per_axis else values[:1]

    def quantize(self, x) -> np.ndarray:
        """Returns real values as integers, int64, x's shape: round half away from zero (TFLite's
        `TfLiteRound`), clip to qmin..qmax. Raises ValueError for a per-axis grid and a tensor
        without one slice per channel on its axis."""
        x = np.asarray(x, np.float64)
        self._check(x)
        return arith.quantize(
            x,
            self._params(self.scale),
            self._params(self.zero_point),
            self.qmin,
            self.qmax,
            self.axis,
        )

    def dequantize(self, q) -> np.ndarray:
        """Returns (q - zero_point) * scale, float64, q's shape. Raises ValueError as `quantize`."""
        q = np.asarray(q, np.int64)
        self._check(q)
        return arith.dequantize(
            q, self._params(self.scale), self._params(self.zero_point), self.axis
        )

    def round_trip(self, x) -> np.ndarray:
        """Returns `x` after quantize then dequantize (fake-quant): float64, x's shape."""
        return self.dequantize(self.quantize(x))

    def clip(self, x) -> np.ndarray:
        """Returns `x` clipped to [low, high]: float64, x's shape; raises ValueError as
        `quantize`."""
        x = np.asarray(x, np.float64)
        if not self.per_axis:
            return np.clip(x, self.low[0], self.high[0])
        self._check(x)
        return np.clip(
            x, arith.along(self.low, x.ndim, self.axis), arith.along(self.high, x.ndim, self.axis)
        )

    def edges(self, channel: int | None = None) -> np.ndarray:
        """Returns the bucket edges, float64 (levels + 1,), ascending: level qmin + i collects
        the reals between edge[i] and edge[i + 1] (an edge goes away from zero, as rounding
        does). Raises ValueError for a per-axis grid without `channel`."""
        if self.per_axis and channel is None:
            raise ValueError(f"this grid is per-axis ({self.scale.size} channels): pass channel=")
        c = 0 if channel is None else channel
        halfway = np.arange(self.qmin, self.qmax + 2, dtype=np.float64) - 0.5  # between two levels
        return arith.dequantize(halfway, self.scale[c], self.zero_point[c])

    def centers(self, channel: int | None = None) -> np.ndarray:
        """Returns the real value of every level, float64 (levels,); raises ValueError as
        `edges`."""
        edges = self.edges(channel)
        return (edges[:-1] + edges[1:]) / 2

    def describe(self) -> str:
        """Returns one line for people: type, symmetry, per-tensor or per-axis, scale, range."""
        kind = f"{'int' if self.signed else 'uint'}{self.bits}"
        where = (
            f"per-axis (axis {self.axis}, {self.scale.size} channels)"
            if self.per_axis
            else "per-tensor"
        )
        sym = "symmetric" if self.symmetric else "asymmetric"
        if self.per_axis:
            return (
                f"{kind} {sym} {where}, scales {self.scale.min():.4g}..{self.scale.max():.4g}, "
                f"{self.levels} levels"
            )
        return (
            f"{kind} {sym} {where}, scale {self.scale[0]:.6g}, zero point {self.zero_point[0]}, "
            f"range [{self.low[0]:.4g}, {self.high[0]:.4g}], {self.levels} levels"
        )

    def __repr__(self) -> str:
        return f"Grid({self.describe()})"


def check_bits(bits) -> int:
    """Returns `bits` as a Python int, once checked to be an integer (not a bool) from 2 to 16;
    raises ValueError for anything else."""
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or bits not in BITS:
        raise ValueError(f"bits must be an integer from 2 to 16, got {bits!r}")
    return int(bits)


def value_range(x, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns (min, max) of a tensor, or of each channel along `axis`: float64 arrays. Raises
    ValueError for an empty, non-numeric or non-finite tensor, or an axis it does not have."""
    x = np.asarray(x)
    if x.size == 0:
        raise ValueError(
            f"the tensor is empty (shape {x.shape}): there is no range to fit a grid to"
        )
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"the tensor must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("the tensor contains NaN or infinite values; a grid needs a finite range")
    if axis is None:
        return np.array([x.min()]), np.array([x.max()])
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} does not exist in a tensor of shape {x.shape}")
    others = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    return x.min(axis=others), x.max(axis=others)


def fit(
    x=None,
    bits: int = 8,
    symmetric: bool = False,
    axis: int | None = None,
    range: tuple | None = None,
    narrow_range: bool | None = None,
    signed: bool = True,
) -> Grid:
    """The grid the TFLite converter would choose for `x` (or for a given (min, max) `range`).

    Asymmetric: the range widened to include 0, scale = (max - min) / (levels - 1), the zero point
    nudged by tflite's `ChooseQuantizationParams` (`_nudged_zero_point`). Symmetric: scale =
    max(|min|, |max|) / qmax, zero at the middle level (`GetSymmetricScalesFromMaxMin`,
    tensorflow/lite/tools/optimize/quantization_utils.cc). `narrow_range` defaults to True for
    symmetric grids of 8 bits or fewer. An all-zero range gets scale 1.0.

    Returns a `Grid` of float64 scales holding float32 values, one or one per channel along `axis`.

    Raises ValueError for bits outside 2..16; neither `x` nor `range`, or both; a range that is
    not a finite (min, max) pair, or per-channel without `axis`; an `x` `value_range` refuses; a
    range too wide for a float32 scale."""
    bits = check_bits(bits)
    lo, hi = _range_to_fit(x, range, axis)
    if narrow_range is None:
        narrow_range = symmetric and bits <= 8
    shape = Grid(bits, np.ones(1), np.zeros(1, np.int64), signed, narrow_range)
    qmin, qmax = shape.qmin, shape.qmax
    if symmetric:
        m = np.maximum(np.abs(lo), np.abs(hi))
        scale = np.where(m > 0, m / qmax if signed else 2 * m / (qmax - qmin), 1.0)
        zero_point = np.full(m.shape, 0 if signed else 1 << (bits - 1), np.int64)
    else:
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
        scale = np.where(hi > lo, (hi - lo) / (qmax - qmin), 1.0)
        zero_point = np.array(
            [_nudged_zero_point(a, b, s, qmin, qmax) for a, b, s in zip(lo, hi, scale)], np.int64
        )
    scale = scale.astype(np.float32).astype(np.float64)  # a .tflite stores float32 scales
    if not np.all(np.isfinite(scale)):
        raise ValueError(
            "the range is too wide for a float32 scale; these values cannot share a grid"
        )
    return Grid(bits, scale, zero_point, signed, narrow_range, axis)


def _range_to_fit(x, range: tuple | None, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of `x`, or the `range` given, checked: float64 arrays, one per channel."""
    if range is not None and x is not None:
        raise ValueError("pass the tensor x or its range=(min, max), not both")
    if range is None:
        if x is None:
            raise ValueError("pass the tensor x, or its range=(min, max)")
        return value_range(x, axis)
    if not isinstance(range, (tuple, list)) or len(range) != 2:
        raise ValueError(f"range must be a pair (min, max), got {range!r}")
    lo, hi = (np.atleast_1d(np.asarray(v, np.float64)) for v in range)
    if lo.shape != hi.shape or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
        raise ValueError(f"range must be finite (min, max) of matching shapes, got {range!r}")
    if np.any(lo > hi):
        raise ValueError(f"range min is above max: {range!r}")
    if axis is None and lo.size != 1:
        raise ValueError("a per-channel range needs axis=")
    return lo, hi


def _nudged_zero_point(rmin: float, rmax: float, scale: float, qmin: int, qmax: int) -> int:
    """The converter's zero point: from whichever end loses less precision, rounded, clamped, as
    tflite's `ChooseQuantizationParams` (tensorflow/lite/kernels/internal/quantization_util.h)."""
    from_min, from_max = qmin - rmin / scale, qmax - rmax / scale
    zp = from_min if abs(qmin) + abs(rmin / scale) < abs(qmax) + abs(rmax / scale) else from_max
    return int(np.clip(arith.round_half_away(np.float64(zp)), qmin, qmax))


def weights(w, bits: int = 8, axis: int | None = 0) -> Grid:
    """Returns the converter's weight `Grid`: symmetric, narrow up to 8 bits, per channel on
    `axis`."""
    return fit(w, bits, symmetric=True, axis=axis)


def activations(x=None, bits: int = 8, range: tuple | None = None) -> Grid:
    """Returns the converter's activation `Grid` for `x` (or its `range`): per-tensor, asymmetric
    up to 8 bits, symmetric above (16: zero point 0); raises ValueError as `fit`."""
    return fit(x, bits, symmetric=bits > 8, range=range, narrow_range=False)


def bias(input_grid: Grid, weight_grid: Grid, bits: int = 32) -> Grid:
    """Returns the bias `Grid` of `bits`: scale input scale × weight scale (float32, per-axis on
    axis 0 if the weights are), zero point 0, so that the bias adds straight into the integer
    accumulator (`SymmetricPerChannelBiasQuantize`,
    tensorflow/lite/tools/optimize/quantization_utils.cc)."""
    scale = (np.float32(input_grid.scale[0]) * weight_grid.scale.astype(np.float32)).astype(
        np.float64
    )
    return Grid(
        bits,
        scale,
        np.zeros(scale.size, np.int64),
        True,
        False,
        0 if weight_grid.per_axis else None,
    )


def of_tensor(tensor, narrow_range: bool | None = None) -> Grid:
    """Returns the `Grid` a .tflite stores for `tensor`, per-axis along `quantized_dimension` if it
    has several scales. The file does not record narrow range: by default constant int8 tensors
    (weights) are taken to be narrow, as the converter makes them.

    Raises ValueError for a tensor that is not quantized, or not of an integer type."""
    if not tensor.quantized:
        raise ValueError(f"tensor {tensor.name!r} is {tensor.type}, not quantized: it has no grid")
    dtype = tensor.dtype
    if dtype is None or dtype.kind not in "iu":
        raise ValueError(f"tensor {tensor.name!r} has type {tensor.type}, not an integer type")
    if narrow_range is None:
        narrow_range = tensor.data is not None and tensor.type == "INT8"
    axis = tensor.quantized_dimension if tensor.per_axis else None
    return Grid(
        dtype.itemsize * 8,
        tensor.scale.astype(np.float64),
        tensor.zero_point.astype(np.int64),
        dtype.kind == "i",
        bool(narrow_range),
        axis,
    )
