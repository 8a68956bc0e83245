"""Which layers hurt, and what to keep in higher precision: per-layer sensitivity and a mixed-precision
search, on files ai-edge-quantizer builds with one precision per op (`qlab.conversion.aeq.recipe`).

Every configuration is a real file run on LiteRT: its accuracy on the samples given, its size, and
the mean squared error of its output against the float32 file's (a finer signal than accuracy on a
few hundred images, where one image is 0.2 pp). Activation ranges come from min-max calibration
(the converter's rule, `qlab.analysis.calibration.method_ranges`), so an all-int8 file here is the
converter's full-integer rule applied by AEQ, or from AEQ's own calibration (`Evaluator.ranges =
"aeq_calibrate"`, a moving average that clips). AEQ's static recipe quantizes the model's input in
every configuration, so even "every op float" reads its input through int8 (a few hundred bytes and
a little input rounding away from the float32 file, which `Evaluator.float_point` measures itself).

- *Sensitivity* (two ways): quantize one layer at a time (every other op float) and measure what it
  costs against float32; keep one layer in float at a time (every other op int8) and measure what
  it gains against all-int8. Ranked by output error.
- *Mixed-precision search*: greedy, from all-int8: at each step try moving each op one step up
  (int8 → int16 activations → float), take the move that removes the most output error per byte
  added, and go on until every op is float. Every configuration tried is kept, so the Pareto front
  of accuracy against size can be drawn from them; `cheapest` picks the smallest within a tolerance
  of float accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from qlab.analysis import calibration
from qlab.conversion import aeq
from qlab.tflite.runtime import Runtime

RANGES = ("minmax", "aeq_calibrate")
"""Where activation ranges come from: qlab's min-max, or AEQ's own calibration (a moving average)."""
STEPS = {"int8": "int16", "int16": "float"}
"""One step up in precision, per op."""


@dataclass
class Evaluator:
    """Builds and measures mixed-precision files of one float32 model (results memoised by config).

    Attributes:
        float32: the float32 .tflite; calibration: samples for min-max ranges; x, y: the samples
        (n,) + input shape and integer labels (n,) every file is measured on; keras_model: names
        the layers (optional); ranges: where activation ranges come from, "minmax" (the
        converter's rule, computed by qlab) or "aeq_calibrate" (AEQ's own moving average).
    """

    float32: bytes
    calibration: np.ndarray
    x: np.ndarray
    y: np.ndarray
    keras_model: object = None
    ranges: str = "minmax"
    _qsvs: dict = field(default=None, repr=False)
    _reference: np.ndarray = field(default=None, repr=False)
    _seen: dict = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> list[str]:
        """The compute ops' labels, in op order (list of str)."""
        return list(aeq.op_scopes(self.float32, self.keras_model))

    def float_point(self) -> dict:
        """The float32 file measured like the others.

        Returns:
            dict: config "float32", accuracy (0..1), size_bytes, output_mse (0.0).
        """
        return {
            "config": "float32",
            "accuracy": self._accuracy(self._float_outputs()),
            "size_bytes": len(self.float32),
            "output_mse": 0.0,
        }

    def evaluate(self, precisions: dict[str, str]) -> dict:
        """One configuration: every op at the precision given (unnamed ops int8), built and run.

        Returns:
            dict: config (JSON of the non-int8 ops: {layer: precision}), accuracy (0..1),
            size_bytes, output_mse (mean squared error of the output against float32's, real units
            squared).

        Raises:
            ValueError: an unknown layer, precision or source of ranges. qlab.conversion.aeq.AEQError: AEQ refused.
        """
        if self.ranges not in RANGES:
            raise ValueError(
                f"unknown source of ranges {self.ranges!r}; valid: {', '.join(RANGES)}"
            )
        config = json.dumps({k: v for k, v in sorted(precisions.items()) if v != "int8"})
        if config not in self._seen:
            if self._qsvs is None:
                self._qsvs = (
                    aeq.calibrate(self.float32, self.calibration)
                    if self.ranges == "aeq_calibrate"
                    else calibration.qsvs(
                        calibration.method_ranges(self.float32, self.calibration, "minmax")
                    )
                )
            tflite = aeq.quantize(
                self.float32,
                "static_wi8_ai8",
                qsvs=self._qsvs,
                precisions=precisions,
                keras_model=self.keras_model,
            )
            outputs = Runtime(tflite).predict(self.x)
            self._seen[config] = {
                "config": config,
                "accuracy": self._accuracy(outputs),
                "size_bytes": len(tflite),
                "output_mse": float(np.mean((outputs - self._float_outputs()) ** 2)),
            }
        return dict(self._seen[config])

    def _float_outputs(self) -> np.ndarray:
        if self._reference is None:
            self._reference = Runtime(self.float32).predict(self.x)
        return self._reference

    def _accuracy(self, outputs: np.ndarray) -> float:
        return float(np.mean(np.argmax(outputs, axis=1) == self.y))


def sensitivity(evaluator: Evaluator, how: str) -> list[dict]:
    """Per-layer sensitivity, one way.

    Args:
        how: "quantize_one" (that op int8, all others float) or "float_one" (that op float, all
            others int8).

    Returns:
        one dict per layer, ranked (rank 1 = most sensitive): layer, rank, accuracy, size_bytes,
        output_mse, and effect_mse: the output error the layer adds alone ("quantize_one") or
        removes when kept in float ("float_one"), real units squared.

    Raises:
        ValueError: an unknown `how`.
    """
    if how not in ("quantize_one", "float_one"):
        raise ValueError(f"unknown sensitivity {how!r}; valid: quantize_one, float_one")
    layers = evaluator.layers
    base = evaluator.evaluate({})["output_mse"]
    rows = []
    for layer in layers:
        if how == "quantize_one":
            point = evaluator.evaluate({other: "float" for other in layers if other != layer})
            effect = point["output_mse"]
        else:
            point = evaluator.evaluate({layer: "float"})
            effect = base - point["output_mse"]
        rows.append({"layer": layer, **point, "effect_mse": effect})
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["effect_mse"])
    for rank, i in enumerate(order, 1):
        rows[i]["rank"] = rank
    return rows


def search(evaluator: Evaluator) -> list[dict]:
    """The greedy mixed-precision search (see the module docstring), from all-int8 to all-float.

    Returns:
        every configuration tried, in the order tried: config, accuracy, size_bytes, output_mse,
        step (0 for all-int8), chosen (True for the configurations the search moved to).

    Raises:
        qlab.conversion.aeq.AEQError: AEQ refused a configuration.
    """
    current = dict.fromkeys(evaluator.layers, "int8")
    here = evaluator.evaluate(current) | {"step": 0, "chosen": True}
    tried, step = [here], 0
    while any(p != "float" for p in current.values()):
        step += 1
        options = []
        for layer, precision in current.items():
            if precision in STEPS:
                config = {**current, layer: STEPS[precision]}
                point = evaluator.evaluate(config) | {"step": step, "chosen": False}
                tried.append(point)
                gain = here["output_mse"] - point["output_mse"]
                options.append(
                    (
                        gain / max(point["size_bytes"] - here["size_bytes"], 1),
                        -len(options),
                        config,
                        point,
                    )
                )
        _, _, current, here = max(options, key=lambda o: (o[0], o[1]))
        here["chosen"] = True
    return tried


def pareto(points: list[dict]) -> list[bool]:
    """Which points no other point beats: none smaller (or as small) and at least as accurate, and
    better in one of the two.

    Returns:
        one bool per point, True on the front of accuracy against size.
    """
    front = []
    for p in points:
        beaten = any(
            q["size_bytes"] <= p["size_bytes"]
            and q["accuracy"] >= p["accuracy"]
            and (q["size_bytes"] < p["size_bytes"] or q["accuracy"] > p["accuracy"])
            for q in points
        )
        front.append(not beaten)
    return front


def cheapest(points: list[dict], float_accuracy: float, tolerance_pp: float = 0.1) -> dict | None:
    """The smallest configuration within `tolerance_pp` of float accuracy.

    Returns:
        that point's dict (ties: the more accurate, then the first tried), or None if none is.
    """
    ok = [p for p in points if 100 * (p["accuracy"] - float_accuracy) >= -tolerance_pp - 1e-9]
    return min(ok, key=lambda p: (p["size_bytes"], -p["accuracy"])) if ok else None
