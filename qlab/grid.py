"""The quantization grid: which real values an integer tensor can hold, and how values land on it.

A grid is `bits`, signed or not, a `scale` and `zero_point` per tensor or per channel (`axis`),
and whether the most negative level is left out (`narrow_range`, as int8 weights do so that the
grid is symmetric about zero). real = (q - zero_point) * scale, as everywhere in qlab.

`fit` chooses a grid for a tensor the way TFLite's converter does, so that its scales equal the
ones written into the .tflite; `of_tensor` reads the grid a .tflite stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qlab.runtime import round_half_away

BITS = range(2, 17)  # what `fit` accepts: 2..16 bits


@dataclass(frozen=True, eq=False)
class Grid:
    """Integer levels qmin..qmax and their real values, per tensor or per channel along `axis`."""

    bits: int
    scale: np.ndarray  # float64 copies of the float32 scales, one per channel (or one)
    zero_point: np.ndarray  # int64, same length as scale
    signed: bool = True
    narrow_range: bool = False
    axis: int | None = None  # None: one scale for the whole tensor

    @property
    def qmin(self) -> int:
        low = -(1 << (self.bits - 1)) if self.signed else 0
        return low + int(self.narrow_range)

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def levels(self) -> int:
        """How many integers the grid has (255 for narrow int8, 256 for int8)."""
        return self.qmax - self.qmin + 1

    @property
    def per_axis(self) -> bool:
        return self.axis is not None

    @property
    def symmetric(self) -> bool:
        """Zero sits at the middle level (zero point 0 for signed, 2^(bits-1) for unsigned)."""
        mid = 0 if self.signed else 1 << (self.bits - 1)
        return bool(np.all(self.zero_point == mid))

    @property
    def low(self) -> np.ndarray:
        """The smallest real value on the grid (per channel)."""
        return (self.qmin - self.zero_point) * self.scale

    @property
    def high(self) -> np.ndarray:
        """The largest real value on the grid (per channel)."""
        return (self.qmax - self.zero_point) * self.scale

    def channel(self, c: int) -> "Grid":
        """The per-tensor grid of channel `c` of a per-axis grid."""
        if not self.per_axis:
            return self
        return Grid(self.bits, self.scale[c:c + 1], self.zero_point[c:c + 1], self.signed,
                    self.narrow_range, None)

    def _broadcast(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.per_axis:
            return self.scale[0], self.zero_point[0]
        if x.ndim <= self.axis or x.shape[self.axis] != self.scale.size:
            raise ValueError(
                f"this grid has {self.scale.size} channels along axis {self.axis}; the tensor has "
                f"shape {x.shape}")
        shape = [1] * x.ndim
        shape[self.axis] = self.scale.size
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def quantize(self, x) -> np.ndarray:
        """Real values -> integers: round half away from zero (as TFLite), clip to qmin..qmax."""
        x = np.asarray(x, np.float64)
        scale, zero_point = self._broadcast(x)
        return np.clip(round_half_away(x / scale) + zero_point, self.qmin, self.qmax).astype(np.int64)

    def dequantize(self, q) -> np.ndarray:
        """Integers -> the real values they stand for."""
        q = np.asarray(q, np.int64)
        scale, zero_point = self._broadcast(q)
        return (q - zero_point) * scale

    def round_trip(self, x) -> np.ndarray:
        """What `x` becomes after quantize then dequantize."""
        return self.dequantize(self.quantize(x))

    def clip(self, x) -> np.ndarray:
        """`x` limited to the grid's real range [low, high]: what clipping alone does."""
        x = np.asarray(x, np.float64)
        if not self.per_axis:
            return np.clip(x, self.low[0], self.high[0])
        scale, zero_point = self._broadcast(x)
        return np.clip(x, (self.qmin - zero_point) * scale, (self.qmax - zero_point) * scale)

    def edges(self, channel: int | None = None) -> np.ndarray:
        """Bucket edges, levels + 1 of them: level q collects the reals in [edge[i], edge[i + 1])."""
        if self.per_axis and channel is None:
            raise ValueError(f"this grid is per-axis ({self.scale.size} channels): pass channel=")
        c = 0 if channel is None else channel
        k = np.arange(self.qmin, self.qmax + 2, dtype=np.float64) - 0.5
        return (k - self.zero_point[c]) * self.scale[c]

    def centers(self, channel: int | None = None) -> np.ndarray:
        """The real value of every level, qmin..qmax."""
        edges = self.edges(channel)
        return (edges[:-1] + edges[1:]) / 2

    def describe(self) -> str:
        kind = f"{'int' if self.signed else 'uint'}{self.bits}"
        where = f"per-axis (axis {self.axis}, {self.scale.size} channels)" if self.per_axis else "per-tensor"
        sym = "symmetric" if self.symmetric else "asymmetric"
        if self.per_axis:
            return (f"{kind} {sym} {where}, scales {self.scale.min():.4g}..{self.scale.max():.4g}, "
                    f"{self.levels} levels")
        return (f"{kind} {sym} {where}, scale {self.scale[0]:.6g}, zero point {self.zero_point[0]}, "
                f"range [{self.low[0]:.4g}, {self.high[0]:.4g}], {self.levels} levels")

    def __repr__(self) -> str:
        return f"Grid({self.describe()})"


def check_bits(bits) -> int:
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or bits not in BITS:
        raise ValueError(f"bits must be an integer from 2 to 16, got {bits!r}")
    return int(bits)


def value_range(x, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of a tensor, or of each channel along `axis`; an empty tensor is refused."""
    x = np.asarray(x)
    if x.size == 0:
        raise ValueError(f"the tensor is empty (shape {x.shape}): there is no range to fit a grid to")
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


def fit(x=None, bits: int = 8, symmetric: bool = False, axis: int | None = None,
        range: tuple | None = None, narrow_range: bool | None = None, signed: bool = True) -> Grid:
    """The grid the TFLite converter would choose for `x` (or for a given (min, max) `range`).

    Asymmetric: the range is widened to include 0, scale = (max - min) / (levels - 1), and the
    zero point is the integer nearest to where 0 falls (so 0 is exact: ReLU zeros and padding
    cost nothing). Symmetric: scale = max(|min|, |max|) / qmax with zero at the middle level.
    `narrow_range` (default: True for symmetric grids of 8 bits or fewer, as int8 weights) drops
    the most negative level. With `axis`, one scale per channel along that axis.
    """
    bits = check_bits(bits)
    if range is not None:
        lo, hi = (np.atleast_1d(np.asarray(v, np.float64)) for v in range)
        if lo.shape != hi.shape or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ValueError(f"range must be finite (min, max) of matching shapes, got {range!r}")
        if np.any(lo > hi):
            raise ValueError(f"range min is above max: {range!r}")
        if axis is None and lo.size != 1:
            raise ValueError("a per-channel range needs axis=")
    elif x is None:
        raise ValueError("pass the tensor x, or its range=(min, max)")
    else:
        lo, hi = value_range(x, axis)
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
        zero_point = np.array([_nudged_zero_point(a, b, s, qmin, qmax)
                               for a, b, s in zip(lo, hi, scale)], np.int64)
    scale = scale.astype(np.float32).astype(np.float64)  # a .tflite stores float32 scales
    return Grid(bits, scale, zero_point, signed, narrow_range, axis)


def _nudged_zero_point(rmin: float, rmax: float, scale: float, qmin: int, qmax: int) -> int:
    """The converter's zero point: from whichever end loses less precision, rounded, clamped."""
    from_min, from_max = qmin - rmin / scale, qmax - rmax / scale
    zp = from_min if abs(qmin) + abs(rmin / scale) < abs(qmax) + abs(rmax / scale) else from_max
    return int(np.clip(round_half_away(np.float64(zp)), qmin, qmax))


def weights(w, bits: int = 8, axis: int | None = 0) -> Grid:
    """The converter's weight grid: symmetric, narrow range, per output channel (axis 0) by default."""
    return fit(w, bits, symmetric=True, axis=axis)


def activations(x=None, bits: int = 8, range: tuple | None = None) -> Grid:
    """The converter's activation grid: asymmetric for 8 bits, symmetric for 16 (zero point 0)."""
    return fit(x, bits, symmetric=bits > 8, range=range, narrow_range=False)


def bias(input_grid: Grid, weight_grid: Grid, bits: int = 32) -> Grid:
    """A bias grid is not fitted: its scale is input scale × weight scale, so that the bias adds
    straight into the integer accumulator; zero point 0."""
    scale = (np.float32(input_grid.scale[0]) * weight_grid.scale.astype(np.float32)).astype(np.float64)
    return Grid(bits, scale, np.zeros(scale.size, np.int64), True, False,
                0 if weight_grid.per_axis else None)


def of_tensor(tensor, narrow_range: bool | None = None) -> Grid:
    """The grid a .tflite stores for `tensor` (a qlab.tflite_file.Tensor).

    The file does not record narrow range; by default constant int8 tensors (weights) are taken
    to be narrow, as the converter makes them.
    """
    if not tensor.quantized:
        raise ValueError(f"tensor {tensor.name!r} is {tensor.type}, not quantized: it has no grid")
    dtype = tensor.dtype
    if dtype is None or dtype.kind not in "iu":
        raise ValueError(f"tensor {tensor.name!r} has type {tensor.type}, not an integer type")
    if narrow_range is None:
        narrow_range = tensor.data is not None and tensor.type == "INT8"
    axis = tensor.quantized_dimension if tensor.per_axis else None
    return Grid(dtype.itemsize * 8, tensor.scale.astype(np.float64), tensor.zero_point.astype(np.int64),
                dtype.kind == "i", bool(narrow_range), axis)


# -- the converter's choices for a whole model ---------------------------------------------------
FIXED_OUTPUT = {  # ops whose output grid the kernel fixes, whatever the data: (scale, zero point)
    ("SOFTMAX", 8): (1 / 256, -128),
    ("SOFTMAX", 16): (1 / 32768, 0),
}
SAME_AS_INPUT = ("RESHAPE",)  # ops that move values without changing them share their input's grid


def converter_grids(pair, calibration: np.ndarray) -> dict[int, Grid]:
    """The grid qlab predicts for every quantized tensor of `pair.deployed`, by tensor index.

    Weights come from the float twin's constants and activation ranges from running the float
    twin on `calibration`, the data the converter calibrated with; each grid is then chosen by
    the rules above. Comparing these with `of_tensor` checks that qlab's grids are the converter's.
    """
    from qlab import capture

    calibration = np.asarray(calibration, np.float32)
    if calibration.size == 0:
        raise ValueError("the calibration set is empty: pass the samples the model was calibrated with")
    captured = capture.run(pair.twin_tflite, calibration)
    deployed, twin = pair.deployed, pair.twin
    predicted: dict[int, Grid] = {}

    def activation(index: int, twin_index: int) -> None:
        t = deployed.tensors[index]
        if t.quantized and index not in predicted:
            values = captured[twin_index]
            bits = t.dtype.itemsize * 8
            predicted[index] = activations(range=(values.min(), values.max()), bits=bits)

    for layer in pair.layers:
        op, twin_op = layer.deployed, layer.twin
        activation(op.inputs[0], twin_op.inputs[0])
        out = deployed.tensors[op.outputs[0]]
        if out.quantized:
            bits = out.dtype.itemsize * 8
            if (layer.op, bits) in FIXED_OUTPUT:
                scale, zero_point = FIXED_OUTPUT[(layer.op, bits)]
                predicted[out.index] = Grid(bits, np.array([scale]), np.array([zero_point]))
            elif layer.op in SAME_AS_INPUT and op.inputs[0] in predicted:
                predicted[out.index] = predicted[op.inputs[0]]
            else:
                activation(out.index, twin_op.outputs[0])
        if layer.op in ("CONV_2D", "FULLY_CONNECTED"):
            w = deployed.tensors[op.inputs[1]]
            if w.quantized:
                w_grid = weights(twin.tensors[twin_op.inputs[1]].data, w.dtype.itemsize * 8,
                                 axis=w.quantized_dimension if w.per_axis else None)
                predicted[w.index] = w_grid
                b_index = op.inputs[2] if len(op.inputs) > 2 else -1
                if b_index >= 0 and deployed.tensors[b_index].quantized and op.inputs[0] in predicted:
                    b = deployed.tensors[b_index]
                    predicted[b_index] = bias(predicted[op.inputs[0]], w_grid, b.dtype.itemsize * 8)
    for op in deployed.ops:  # QUANTIZE between integer types only changes the zero point
        if op.name != "QUANTIZE":
            continue
        src, dst = (deployed.tensors[op.inputs[0]], deployed.tensors[op.outputs[0]])
        if src.quantized and dst.quantized:
            known, unknown = (src, dst) if src.index in predicted else (dst, src)
            if known.index in predicted and unknown.index not in predicted:
                g = predicted[known.index]
                shift = (1 << (g.bits - 1)) * (1 if known.dtype.kind == "i" else -1)
                predicted[unknown.index] = Grid(g.bits, g.scale, g.zero_point + shift,
                                                unknown.dtype.kind == "i", g.narrow_range, g.axis)
    return predicted
