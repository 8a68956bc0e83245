"""The explorer's computing half: one layer of a Keras model quantized as a `Settings` says, its
weights and activations counted on their grids, their error split into rounding and clipping, and
the model's test accuracy with that layer fake-quantized. No widgets here
(`qlab_workshop.explorer.widgets`).

`Explorer(model, dataset)` prepares once: a copy of the model whose explorable layers are each
followed by a fake-quant site (identity until a grid is set; the grid's own `round_trip` runs
inside the graph through `tf.numpy_function`), the float model's outputs at every site for the
test split, and (per calibration size, when first asked) for the calibration images.
`Explorer.compute(settings)` then fits the grids with `qlab.analysis.grid.fit`, measures them with
`qlab.analysis.rounding`, puts the fake-quantized kernel into the copy, runs the test split, and
puts the float kernel back: the model and the copy are float again after every call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from qlab.analysis import grid, rounding
from qlab.training import data
from qlab_workshop.explorer.model import Sites

QUANTIZE = ("both", "weights", "activations")  # what goes on a grid: `Settings.quantize`


@dataclass(frozen=True)
class Settings:
    """What the explorer quantizes, and how.

    Attributes:
        layer: the Keras layer (one of `Explorer.layers`).
        bits: 2..16 (the explorer's slider offers 2..8).
        symmetric: True: zero at the middle level (weights also drop the most negative level
            up to 8 bits, as the converter's int8 weights); False: the range's ends on the grid's.
        per_channel: weights get one grid per output channel (the kernel's last axis); False: one
            grid for the whole kernel. Activations always have one grid (per tensor).
        clip: the fraction of the observed range the grid keeps, in (0, 1]: the grid is fitted to
            (low × clip, high × clip), as `qlab.analysis.rounding.clip_sweep` shrinks a range.
        calibration: how many calibration images (`qlab.training.data.calibration`, seed 0) set the
            activations' observed range.
        quantize: "both", "weights" or "activations": what is fake-quantized in the model.

    Raises:
        ValueError: bits outside 2..16, clip outside (0, 1], a calibration size that is not a whole
            number of 1 or more, symmetric or per_channel not a bool, or quantize not in QUANTIZE.
    """

    layer: str
    bits: int = 8
    symmetric: bool = False
    per_channel: bool = True
    clip: float = 1.0
    calibration: int = 100
    quantize: str = "both"

    def __post_init__(self):
        grid.check_bits(self.bits)
        for name in ("symmetric", "per_channel"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        clip = self.clip
        if (
            isinstance(clip, bool)
            or not isinstance(clip, (int, float, np.number))
            or not 0 < clip <= 1
        ):
            raise ValueError(
                f"clip must be the fraction of the observed range to keep, in (0, 1], got {clip!r}"
            )
        n = self.calibration
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"calibration must be a whole number of images, 1 or more, got {n!r}")
        if self.quantize not in QUANTIZE:
            raise ValueError(
                f"quantize must be one of {', '.join(QUANTIZE)}, got {self.quantize!r}"
            )

    def describe(self) -> str:
        """Returns one line (str): e.g. "conv2: int4 asymmetric per-channel, clip 0.80, 100
        calibration images"."""
        kind = f"int{self.bits} {'symmetric' if self.symmetric else 'asymmetric'}"
        where = "per-channel" if self.per_channel else "per-tensor"
        what = "" if self.quantize == "both" else f", {self.quantize} only"
        return (
            f"{self.layer}: {kind} {where}, clip {self.clip:.2f}, "
            f"{self.calibration} calibration image{'s' * (self.calibration != 1)}{what}"
        )


@dataclass(frozen=True, eq=False)
class OnGrid:
    """One tensor of the layer on its grid.

    Attributes:
        name: the weight's name ("kernel", "depthwise_kernel", "recurrent_kernel", ...) or
            "activations".
        values: float64. Weights: the float kernel, output channels on the last axis (a
            depthwise kernel (kh, kw, in, multiplier) reshaped to (kh, kw, in × multiplier)).
            Activations: the float model's outputs at the layer's site for the test split.
        grid: the `qlab.analysis.grid.Grid` they are put on (per-axis on the last axis, or
            per-tensor).
        observed: (low, high), float64 arrays: the range the grid was fitted to before clipping
            (per channel, or (1,)); for activations, over the calibration images.
        counts: int64 (grid.levels,): how many values land on each level qmin..qmax.
        clipped: int64 (grid.levels,): how many of those were clipped (only the end levels).
        split: `qlab.analysis.rounding.split(values, grid)`: rounding_mse, clipping_mse,
            total_mse (squared real units), clipped_fraction (0..1), rmse/scale.
    """

    name: str
    values: np.ndarray
    grid: grid.Grid
    observed: tuple[np.ndarray, np.ndarray]
    counts: np.ndarray
    clipped: np.ndarray
    split: dict

    @property
    def used(self) -> int:
        """How many levels at least one value lands on (int)."""
        return int(np.count_nonzero(self.counts))


def on_grid(name: str, values: np.ndarray, g: grid.Grid, observed) -> OnGrid:
    """Put `values` on grid `g`: per-level counts (each channel on its own scale), error split.

    Returns:
        an `OnGrid`.

    Raises:
        ValueError: as `qlab.analysis.rounding.split` (values empty or not finite, a per-axis grid
            without one slice per channel).
    """
    split = rounding.split(values, g)
    levels = (g.quantize(values) - g.qmin).ravel()
    clipped = rounding.errors(values, g)[1].ravel() != 0
    return OnGrid(
        name,
        values,
        g,
        observed,
        np.bincount(levels, minlength=g.levels),
        np.bincount(levels[clipped], minlength=g.levels),
        split,
    )


def fit(values: np.ndarray, settings: Settings, weights: bool, observed=None) -> grid.Grid:
    """The grid `settings` gives a tensor: `qlab.analysis.grid.fit` to its observed range × clip.

    Args:
        values: the tensor (weights: output channels on the last axis).
        weights: True for a kernel (per channel if settings say so; symmetric ones narrow, as
            `grid.fit` makes them up to 8 bits), False for activations (per tensor, full range).
        observed: (low, high) to use instead of the values' own range (activations: calibration's).

    Returns:
        the `Grid`.

    Raises:
        ValueError: as `qlab.analysis.grid.fit` and `grid.value_range`.
    """
    axis = values.ndim - 1 if weights and settings.per_channel else None
    low, high = grid.value_range(values, axis) if observed is None else observed
    narrow = None if weights else False
    return grid.fit(
        range=(low * settings.clip, high * settings.clip),
        bits=settings.bits,
        symmetric=settings.symmetric,
        axis=axis,
        narrow_range=narrow,
    )


def combined(parts) -> dict:
    """The error split of several tensors taken together: each mean weighted by the tensor's size.

    Returns:
        dict of float: rounding_mse, clipping_mse, total_mse, clipped_fraction (a single tensor's
        own values, as `rounding.split` gives them).
    """
    sizes = np.array([p.values.size for p in parts], np.float64)
    keys = ("rounding_mse", "clipping_mse", "total_mse", "clipped_fraction")
    return {k: float(np.dot(sizes, [p.split[k] for p in parts]) / sizes.sum()) for k in keys}


@dataclass(frozen=True, eq=False)
class Result:
    """What `Explorer.compute` found for one `Settings`.

    Attributes:
        settings: the `Settings`.
        weights: one `OnGrid` per kernel of the layer (empty when only activations are quantized).
        activations: the layer's outputs on their grid (None when only weights are quantized).
        accuracy: test accuracy with the layer fake-quantized, in [0, 1].
        float_accuracy: the float model's test accuracy, in [0, 1].
        seconds: how long `compute` took (wall, perf_counter).
    """

    settings: Settings
    weights: tuple
    activations: OnGrid | None
    accuracy: float
    float_accuracy: float
    seconds: float

    def summary(self) -> str:
        """Returns the line the explorer shows (str): accuracy, float accuracy, then each tensor's
        rounding and clipping error (mean squared, real units; share of values clipped), time."""
        parts = [f"accuracy {100 * self.accuracy:.2f} % (float {100 * self.float_accuracy:.2f} %)"]
        for label, split in (
            ("weights", combined(self.weights) if self.weights else None),
            ("activations", self.activations.split if self.activations else None),
        ):
            if split is not None:
                parts.append(
                    f"{label}: rounding error {split['rounding_mse']:.3g}, clipping error "
                    f"{split['clipping_mse']:.3g} ({100 * split['clipped_fraction']:.2f} % clipped)"
                )
        return " · ".join(parts + [f"computed in {self.seconds:.2f} s"])


class Explorer:
    """A float Keras model and its data, ready for `compute` (see the module's docstring).

    Args:
        model: a float tf_keras model (Sequential or functional) with one input, whose outputs'
            argmax is the class (probabilities or logits).
        dataset: a `qlab.training.data.Dataset` whose samples fit the model.
        seed: which calibration images `qlab.training.data.calibration` draws.

    Raises:
        ValueError: a QAT (wrapped) model, several inputs, samples of the wrong shape, or no layer
            with a kernel (see `qlab_workshop.explorer.model.Sites`).
    """

    def __init__(self, model, dataset: data.Dataset, seed: int = 0):
        self.model, self.dataset, self.seed = model, dataset, seed
        self.sites = Sites(model, dataset.sample_shape)
        self.test_outputs = self.sites.float_outputs(dataset.x_test)
        self.float_accuracy = self.sites.accuracy(dataset.x_test, dataset.y_test)
        self._calibration: dict[int, dict] = {}

    @property
    def layers(self) -> list[str]:
        """The layers the explorer can quantize (list of str, model order): those with a kernel."""
        return list(self.sites.layers)

    def check(self, settings: Settings) -> Settings:
        """Returns `settings`, once checked against this model and data.

        Raises:
            TypeError: not a `Settings`.
            ValueError: an unknown layer (the message lists the valid ones), or more calibration
                images than the training split holds.
        """
        if not isinstance(settings, Settings):
            raise TypeError(
                f"pass a qlab_workshop.explorer.Settings, got {type(settings).__name__}"
            )
        if settings.layer not in self.sites.layers:
            raise ValueError(
                f"unknown layer {settings.layer!r}: the layers of model {self.model.name!r} "
                f"with weights to quantize are {', '.join(self.layers)}"
            )
        pool = len(self.dataset.x_train)
        if settings.calibration > pool:
            raise ValueError(
                f"calibration={settings.calibration} images, but the training split holds {pool}"
            )
        return settings

    def calibration_range(self, layer: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The range of `layer`'s float outputs (at its site) over `n` calibration images.

        Returns:
            (low, high): float64 arrays of shape (1,), as `qlab.analysis.grid.value_range`.

        Raises:
            ValueError: as `qlab.training.data.calibration` (n outside 1..training split size).
        """
        if n not in self._calibration:
            images = data.calibration(self.dataset.x_train, n, self.seed)
            self._calibration[n] = {
                k: grid.value_range(v) for k, v in self.sites.float_outputs(images).items()
            }
        return self._calibration[n][layer]

    def compute(self, settings: Settings) -> Result:
        """Quantize one layer as `settings` say and measure it (the model is left unchanged).

        Returns:
            a `Result`: each tensor on its grid, the error splits, the test accuracy with the
            layer fake-quantized, the float accuracy, and the time taken.

        Raises:
            TypeError, ValueError: settings `check` refuses.
        """
        start = time.perf_counter()
        settings = self.check(settings)
        weights, activations, fake = (), None, {}
        if settings.quantize != "activations":
            for name, values in self.sites.kernels(settings.layer).items():
                g = fit(values, settings, weights=True)
                weights += (on_grid(name, values, g, grid.value_range(values, g.axis)),)
                fake[name] = g.round_trip(values)
        if settings.quantize != "weights":
            observed = self.calibration_range(settings.layer, settings.calibration)
            values = self.test_outputs[settings.layer].astype(np.float64)
            g = fit(values, settings, weights=False, observed=observed)
            activations = on_grid("activations", values, g, observed)
        accuracy = self.sites.accuracy(
            self.dataset.x_test,
            self.dataset.y_test,
            settings.layer,
            fake,
            activations.grid if activations else None,
        )
        return Result(
            settings,
            weights,
            activations,
            accuracy,
            self.float_accuracy,
            time.perf_counter() - start,
        )
