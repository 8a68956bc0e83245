"""The fake-quant ops of a quantization-aware (QAT) model: where they are (`sites`), their ranges
set from a calibration set without training (`calibrate`: post-training fake-quant), and the grid
each one rounds to (`grids`, `table`), read from its min and max variables.

TensorFlow's FakeQuantWithMinMaxVars (and its per-channel form) does not quantize between the
min and max it is given: it first *nudges* them so that real 0 falls on a level, and rounds
between the nudged ends (`Nudge` in tensorflow/core/kernels/fake_quant_ops_functor.h):

    scale = (max - min) / (quant_max - quant_min)                          (float32)
    zero_point = round(quant_min - min / scale), clamped to quant_min..quant_max  (std::round)
    levels quant_min..quant_max = (narrow_range ? 1 : 0) .. 2^bits - 1      (unsigned)

`nudge` computes the same in float32 and returns a `qlab.analysis.grid.Grid`, signed as qlab
and TFLite's int8 files write grids: the unsigned levels shifted by 2^(bits-1), so an 8-bit
activation's zero point is the uint8 one minus 128. The round trip is unchanged by the shift.
The op rounds (x - nudged_min) / scale half up, `Grid.round_trip` x / scale half away from zero:
they agree except for values within float32 rounding of a bucket edge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qlab import arith
from qlab.analysis.grid import Grid, check_bits

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Site:
    """One fake-quant op of a wrapped model: where it is, what it quantizes, and its state.

    Attributes:
        layer: the Keras layer holding it (a `quant_` wrapper, or the input's `QuantizeLayer`).
        tensor: the kernel's name ("kernel", "depthwise_kernel"), or "input", "pre_activation",
            "post_activation", "output".
        kind: "weight" or "activation".
        quantizer: the tfmot `Quantizer` running the op.
        variables: what the quantizer's `build` returned (tfmot's and qlab's: min_var, max_var).
        weight: the float weight variable it quantizes (weights only).
    """

    layer: str
    tensor: str
    kind: str
    quantizer: object
    variables: dict
    weight: object = None
    holder: object = (
        None  # where the quantizer object lives, so that calibration can stand in for it
    )
    slot: object = None


def sites(model) -> list[Site]:
    """Every fake-quant op of a model wrapped by tfmot (`qlab.training.schemes`' or the default 8-bit scheme).

    Returns:
        `Site`s in layer order: per layer its weights, then its activations, then its output.
    """
    found = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "QuantizeLayer" and layer.quantizer is not None:
            found.append(
                Site(
                    layer.name,
                    "input",
                    "activation",
                    layer.quantizer,
                    layer.quantizer_vars,
                    holder=layer,
                    slot="quantizer",
                )
            )
        if kind not in ("QuantizeWrapper", "QuantizeWrapperV2"):
            continue
        for i, (weight, quantizer, variables) in enumerate(layer._weight_vars):
            found.append(
                Site(
                    layer.name,
                    layer._weight_name(weight.name),
                    "weight",
                    quantizer,
                    variables,
                    weight,
                    layer._weight_vars,
                    i,
                )
            )
        for activation in layer._quantize_activations:
            for part in ("pre_activation", "post_activation"):
                variables = getattr(activation, f"_{part}_vars", None)
                if variables is not None:
                    found.append(
                        Site(
                            layer.name,
                            part,
                            "activation",
                            activation.quantizer,
                            variables,
                            holder=activation,
                            slot="quantizer",
                        )
                    )
        if layer._output_quantizers:
            found.append(
                Site(
                    layer.name,
                    "output",
                    "activation",
                    layer._output_quantizers[0],
                    layer._output_quantizer_vars,
                    holder=layer._output_quantizers,
                    slot=0,
                )
            )
    return found


class _Observer:
    """Stands in for every quantizer while calibrating: passes values through (the float model)
    and keeps the ones each activation op sees, keyed by its variables."""

    def __init__(self, watched: set):
        self.watched, self.seen = watched, {}

    def __call__(self, inputs, training, weights, **kwargs):
        if id(weights) in self.watched:
            self.seen.setdefault(id(weights), []).append(np.asarray(inputs).ravel())
        return inputs


def _put(site: Site, quantizer) -> None:
    if site.kind == "weight":
        site.holder[site.slot] = (site.weight, quantizer, site.variables)
    elif isinstance(site.slot, int):
        site.holder[site.slot] = quantizer
    else:
        setattr(site.holder, site.slot, quantizer)


def calibrate(model, calibration, batch_size: int = 128):
    """Post-training fake-quant: set every range of a wrapped model without training it.

    Weight ranges follow each weight quantizer's own rule applied to the weights once (tfmot's:
    the last value of min and max, symmetric, per-axis for convolutions; `range_of` if it has
    one). Activation ranges come from the calibration (representative) dataset run through the
    *float* model (every fake-quant op passed through, in inference mode: BatchNorm uses its
    moving statistics and updates nothing, Dropout drops nothing), as the TFLite converter
    calibrates: min and max widened to include 0, or the quantizer's `range_of` (a
    `qlab.training.schemes.PercentileQuantizer`'s percentiles). Weights are not changed.

    Args:
        calibration: representative samples, (n,) + the model's input shape.
        batch_size: samples per forward pass.

    Returns:
        `model`, its range variables set in place.

    Raises:
        ValueError: a model without fake-quant ops, an empty calibration set, or an activation
            quantizer without min_var and max_var variables.
    """
    calibration = np.asarray(calibration, np.float32)
    found = sites(model)
    if not found:
        raise ValueError(
            f"model {model.name!r} has no fake-quant ops: wrap it first (qlab.training.schemes.quantize_bits "
            "or qlab.training.fit.quantize_aware)"
        )
    if calibration.ndim < 2 or len(calibration) == 0:
        raise ValueError(f"the calibration set must hold samples, got shape {calibration.shape}")
    activations = [s for s in found if s.kind == "activation"]
    for site in activations:
        if not {"min_var", "max_var"} <= set(site.variables):
            raise ValueError(
                f"cannot calibrate {site.layer}/{site.tensor}: its quantizer "
                f"{type(site.quantizer).__name__} keeps no min_var and max_var"
            )
    observer = _Observer({id(s.variables) for s in activations})
    for site in found:
        _put(site, observer)
    try:
        for start in range(0, len(calibration), batch_size):
            model(calibration[start : start + batch_size], training=False)
    finally:
        for site in found:
            _put(site, site.quantizer)
    for site in activations:
        values = np.concatenate(observer.seen[id(site.variables)])
        if hasattr(site.quantizer, "range_of"):
            low, high = site.quantizer.range_of(values)
        else:
            low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
        site.variables["min_var"].assign(low)
        site.variables["max_var"].assign(high)
    for site in (s for s in found if s.kind == "weight"):
        if hasattr(site.quantizer, "range_of"):
            low, high = site.quantizer.range_of(site.weight.numpy())
            site.variables["min_var"].assign(low)
            site.variables["max_var"].assign(high)
        else:  # tfmot's weight quantizers set their range from the weights when called in training
            site.quantizer(site.weight, True, weights=site.variables)
    log.info(
        "calibrated %d fake-quant ops of %s on %d samples", len(found), model.name, len(calibration)
    )
    return model


def nudge(
    min_value, max_value, bits: int, narrow_range: bool = False, axis: int | None = None
) -> Grid:
    """The grid TensorFlow's fake-quant op uses for the range [min_value, max_value].

    Args:
        min_value, max_value: the op's min and max variables: scalars, or one per channel.
        bits: the op's num_bits (2..16).
        narrow_range: the op's narrow_range (the lowest level left out).
        axis: the tensor's channel axis for per-channel min and max (the last, in TensorFlow's op).

    Returns:
        `Grid` of `bits`, signed, float64 copies of the float32 scales, int64 zero points; one per
        channel along `axis`, or one.

    Raises:
        ValueError: bits outside 2..16, min above or equal to max (no grid: TensorFlow's op then
            returns min), shapes that differ, or per-channel values without `axis`.
    """
    bits = check_bits(bits)
    low = np.atleast_1d(np.asarray(min_value, np.float32))
    high = np.atleast_1d(np.asarray(max_value, np.float32))
    if low.shape != high.shape or (axis is None and low.size != 1):
        raise ValueError(
            f"min and max must be one value, or one per channel with axis=; got shapes "
            f"{low.shape} and {high.shape}"
        )
    quant_min, quant_max = np.float32(int(narrow_range)), np.float32((1 << bits) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (high - low) / (quant_max - quant_min)  # float32 throughout, as the kernel computes
        from_min = quant_min - low / scale
    if not np.all(scale > 0) or not np.all(np.isfinite(scale)):
        raise ValueError(f"the range [{low.min()}, {high.max()}] is empty or not finite: no grid")
    zero_point = np.clip(arith.round_half_away(from_min), quant_min, quant_max).astype(np.int64)
    return Grid(
        bits,
        scale.astype(np.float64),
        zero_point - (1 << (bits - 1)),
        True,
        bool(narrow_range),
        axis,
    )


@dataclass(frozen=True, eq=False)
class FakeQuantGrid:
    """One fake-quant op and its grid.

    Attributes:
        site: the op (`Site`: layer, tensor, kind, quantizer, variables).
        grid: the `Grid` it rounds to, from its variables now (`nudge`).
    """

    site: Site
    grid: Grid


def grids(model) -> list[FakeQuantGrid]:
    """The grid of every fake-quant op of a wrapped model whose quantizer keeps min_var and max_var
    and says its num_bits (tfmot's quantizers and `qlab.training.schemes.PercentileQuantizer` do).

    An op whose range is still empty (tfmot's input quantizer starts at [0, 0] and moves only in
    training; TensorFlow's op then outputs 0) has no grid and is left out, with a log line.

    Returns:
        `FakeQuantGrid`s in the order of `sites`; a weight whose min and max are one per channel
        gets a per-axis grid along its last axis.
    """
    found = []
    for site in sites(model):
        q, v = site.quantizer, site.variables
        if not ({"min_var", "max_var"} <= set(v) and hasattr(q, "num_bits")):
            continue
        low, high = v["min_var"].numpy(), v["max_var"].numpy()
        if not np.all(high > low):
            log.info(
                "%s/%s has an empty range [%s, %s]: no grid", site.layer, site.tensor, low, high
            )
            continue
        axis = len(site.weight.shape) - 1 if low.ndim == 1 and site.weight is not None else None
        found.append(
            FakeQuantGrid(
                site, nudge(low, high, q.num_bits, getattr(q, "narrow_range", False), axis)
            )
        )
    return found


def table(model) -> pd.DataFrame:
    """The grids of `grids(model)` as a table for people.

    Returns:
        one row per fake-quant op: layer, tensor, kind, quantizer (class name), bits, levels,
        per_axis, scale (per-axis: the smallest), zero_point (per-axis: the first), low and high
        (the grid's real range; per-axis: the widest), grid (`Grid.describe`).
    """
    rows = []
    for entry in grids(model):
        g, s = entry.grid, entry.site
        rows.append(
            {
                "layer": s.layer,
                "tensor": s.tensor,
                "kind": s.kind,
                "quantizer": type(s.quantizer).__name__,
                "bits": g.bits,
                "levels": g.levels,
                "per_axis": g.per_axis,
                "scale": float(g.scale.min()),
                "zero_point": int(g.zero_point[0]),
                "low": float(g.low.min()),
                "high": float(g.high.max()),
                "grid": g.describe(),
            }
        )
    return pd.DataFrame(rows)


def apply(entry: FakeQuantGrid, x) -> np.ndarray:
    """Run the op itself (its quantizer, in inference mode, with its variables) on `x`.

    Args:
        x: values of the tensor's shape (a weight's: its shape; an activation: any shape).

    Returns:
        float32 array of x's shape: what the fake-quant op outputs, to compare with
        `entry.grid.round_trip(x)`.
    """
    import tensorflow as tf  # TensorFlow's op runs it; reading grids needs no TensorFlow

    out = entry.site.quantizer(
        tf.constant(np.asarray(x, np.float32)), False, weights=entry.site.variables
    )
    return np.asarray(out, np.float32)
