"""The fake-quant ops of a quantization-aware (QAT) model: where they are (`sites`), their ranges
set from a calibration set without training (`calibrate`), and the grid each rounds to (`grids`,
`table`), read from its min and max variables.

TensorFlow's FakeQuantWithMinMaxVars first *nudges* min and max so that real 0 falls on a level,
then rounds between the nudged ends (`Nudge` in tensorflow/core/kernels/fake_quant_ops_functor.h):

    scale = (max - min) / (quant_max - quant_min)                          (float32)
    zero_point = round(quant_min - min / scale), clamped to quant_min..quant_max  (std::round)
    levels quant_min..quant_max = (narrow_range ? 1 : 0) .. 2^bits - 1      (unsigned)

`nudge` returns it as a signed `Grid`, as TFLite's int8 files write grids: the unsigned levels
shifted by 2^(bits-1), which leaves the round trip unchanged. The op rounds (x - nudged_min) /
scale half up, `Grid.round_trip` x / scale half away: they agree but within float32 rounding of a
bucket edge."""

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
    """One fake-quant op of a wrapped model: the Keras `layer` holding it, the `tensor` it
    quantizes (a kernel's name, or "input", "pre_activation", "post_activation", "output"), its
    `kind` ("weight" or "activation"), the tfmot `quantizer`, its `variables` (min_var, max_var,
    ...) and, for weights, the float `weight` variable."""

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
    """Returns the `Site` of every fake-quant op of a tfmot-wrapped model, in layer order: per
    layer its weights, then its activations, then its output."""
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

    Weight ranges follow each weight quantizer's own rule on the weights (tfmot's: symmetric,
    per-axis for convolutions; `range_of` if it has one). Activation ranges come from the
    calibration set run through the *float* model in inference mode, as the TFLite converter
    calibrates: min and max widened to include 0, or the quantizer's `range_of`. Weights are not
    changed.

    Returns `model`, its range variables set in place. Raises ValueError for a model without
    fake-quant ops, an empty calibration set, or an activation quantizer without min_var and
    max_var."""
    calibration = np.asarray(calibration, np.float32)
    found = sites(model)
    activations = _calibration_sites(model, found, calibration)
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
    _set_weight_ranges(s for s in found if s.kind == "weight")
    log.info(
        "calibrated %d fake-quant ops of %s on %d samples", len(found), model.name, len(calibration)
    )
    return model


def _calibration_sites(model, found: list[Site], calibration: np.ndarray) -> list[Site]:
    """The activation sites to calibrate, once the model and the samples are checked."""
    if not found:
        raise ValueError(
            f"model {model.name!r} has no fake-quant ops: wrap it first "
            "(qlab.training.schemes.quantize_bits or qlab.training.fit.quantize_aware)"
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
    return activations


def _set_weight_ranges(weight_sites) -> None:
    for site in weight_sites:
        if hasattr(site.quantizer, "range_of"):
            low, high = site.quantizer.range_of(site.weight.numpy())
            site.variables["min_var"].assign(low)
            site.variables["max_var"].assign(high)
        else:  # tfmot's weight quantizers set their range from the weights when called in training
            site.quantizer(site.weight, True, weights=site.variables)


def nudge(
    min_value, max_value, bits: int, narrow_range: bool = False, axis: int | None = None
) -> Grid:
    """Returns the `Grid` TensorFlow's fake-quant op uses for [min_value, max_value]: signed,
    float64 copies of the float32 scales, one per channel along `axis` (per-channel min and max) or
    one.

    Raises ValueError for bits outside 2..16, min at or above max (the op then returns min),
    shapes that differ, or per-channel values without `axis`."""
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
    """One fake-quant op (`site`) and the `grid` it rounds to now (`nudge`)."""

    site: Site
    grid: Grid


def grids(model) -> list[FakeQuantGrid]:
    """Returns a `FakeQuantGrid` for every fake-quant op whose quantizer keeps min_var and
    max_var and says its num_bits, in the order of `sites` (per-channel weights: per-axis along
    the last axis). An op whose range is still empty (tfmot's input quantizer starts at [0, 0])
    is left out, with a log line."""
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
    """Returns `grids(model)` as a DataFrame: layer, tensor, kind, quantizer, bits, levels,
    per_axis, scale (the smallest), zero_point (the first), low and high (the widest), grid
    (`Grid.describe`)."""
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
    """Returns what the fake-quant op itself outputs for `x` (float32, x's shape), in inference
    mode, to compare with `entry.grid.round_trip(x)`."""
    import tensorflow as tf  # TensorFlow's op runs it; reading grids needs no TensorFlow

    out = entry.site.quantizer(
        tf.constant(np.asarray(x, np.float32)), False, weights=entry.site.variables
    )
    return np.asarray(out, np.float32)
