"""Which layers hurt, and what to keep in higher precision: per-layer sensitivity and a
mixed-precision search, on files ai-edge-quantizer builds with one precision per op
(`qlab.conversion.aeq.recipe`).

Every configuration is a real file run on LiteRT: its accuracy, size, and the mean squared error of
its output against the float32 file's. Activation ranges come from min-max calibration
(`calibration.method_ranges`) or from AEQ's own (`Evaluator.ranges = "aeq_calibrate"`). AEQ's static
recipe quantizes the model's input in every configuration, even "every op float".

- *Sensitivity*: quantize one layer at a time (every other op float) and measure what it costs; keep
  one layer in float at a time and measure what it gains. Ranked by output error.
- *Mixed-precision search*: greedy, from all-int8, each step moving the op one step up (int8 →
  int16 activations → float) that removes the most output error per byte added, until all is
  float. Every configuration tried is kept, for the Pareto front; `cheapest` picks the smallest
  within a tolerance of float accuracy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from qlab.analysis import calibration
from qlab.conversion import aeq
from qlab.tflite.runtime import Runtime

RANGES = ("minmax", "aeq_calibrate")
"""Where activation ranges come from: qlab's min-max, or AEQ's own calibration (a moving
average)."""
STEPS = {"int8": "int16", "int16": "float"}
"""One step up in precision, per op."""


@dataclass
class Evaluator:
    """Builds and measures mixed-precision files of one float32 model, memoised by configuration:
    `calibration` for min-max ranges, `x`, `y` the samples and labels every file is measured on,
    `ranges` "minmax" or "aeq_calibrate"."""

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
        """Returns the float32 file measured like the others: config "float32", accuracy,
        size_bytes, output_mse 0.0."""
        return {
            "config": "float32",
            "accuracy": self._accuracy(self._float_outputs()),
            "size_bytes": len(self.float32),
            "output_mse": 0.0,
        }

    def evaluate(self, precisions: dict[str, str]) -> dict:
        """Returns one configuration built and run (unnamed ops int8): config (JSON of the non-int8
        ops), accuracy (0..1), size_bytes, output_mse (against float32's output).

        Raises ValueError for an unknown layer, precision or source of ranges,
        qlab.conversion.aeq.AEQError if AEQ refused."""
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
    """Per-layer sensitivity: `how` "quantize_one" (that op int8, all others float) or "float_one"
    (that op float, all others int8).

    Returns one dict per layer: layer, rank (1 = most sensitive), accuracy, size_bytes,
    output_mse, effect_mse (the output error the layer adds alone, or removes when kept in
    float). Raises ValueError for an unknown `how`."""
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
    """Returns every configuration the greedy search tried, in order: config, accuracy,
    size_bytes, output_mse, step (0 for all-int8), chosen (the ones it moved to). Raises
    qlab.conversion.aeq.AEQError if AEQ refused one."""
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
    """Returns one bool per point: True if no other point is as small and as accurate, and better
    in one of the two."""
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
    """Returns the smallest point within `tolerance_pp` of float accuracy (ties: the more
    accurate, then the first), or None."""
    ok = [p for p in points if 100 * (p["accuracy"] - float_accuracy) >= -tolerance_pp - 1e-9]
    return min(ok, key=lambda p: (p["size_bytes"], -p["accuracy"])) if ok else None
