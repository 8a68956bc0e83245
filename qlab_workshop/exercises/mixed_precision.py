"""Checked exercises of notebook 13 (ai-edge-quantizer and mixed precision): a recipe that keeps one
op in float, the cheapest configuration within a tolerance, and the sensitivity ranking.

The truth is computed when a check runs: the file ai-edge-quantizer (AEQ) writes from the learner's
recipe against the one `qlab.conversion.aeq.recipe` gives (op by op, the types in the files), points
picked by `qlab.analysis.precision.cheapest`, and the ranks `qlab.analysis.precision.sensitivity`
gives (`qlab.studies.sensitivity.measure`).
"""

from __future__ import annotations

import copy
import functools
import warnings

import pandas as pd

from qlab import artifacts
from qlab.analysis import calibration, precision
from qlab.conversion import aeq
from qlab.infra import quiet
from qlab.studies import sensitivity
from qlab.tflite import flatbuffer, naming
from qlab.training import data
from qlab.training.fit import TrainConfig
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

RECIPE_HINT = (
    'keep the recipe\'s rules and append one: {"regex": scope, "operation": "*", '
    '"algorithm_key": "no_quantize", "op_config": {"compute_precision": "FLOAT"}}; '
    "AEQ applies the last rule that matches an op"
)


@functools.lru_cache(maxsize=2)
def _model(config: TrainConfig):
    """(keras model, float32 .tflite, min-max QSVs over 20 training images) of `config`, cached."""
    dataset = data.load(config.dataset)
    keras_model = artifacts.trained(config, dataset, progress=False)
    float32 = artifacts.quantized(config, "float32", progress=False)
    with quiet.stderr():
        qsvs = calibration.qsvs(
            calibration.method_ranges(float32, data.calibration(dataset.x_train, 20), "minmax")
        )
    return keras_model, float32, qsvs


def op_types(tflite: bytes, keras_model=None) -> dict[str, str]:
    """Each compute op's output type in a file, by layer label.

    Returns:
        {layer label: tensor type name, e.g. "INT8" or "FLOAT32"}, in op order.
    """
    model = flatbuffer.read(tflite)
    labels = naming.labels(model, keras_model)
    return {labels[op.index]: model.tensors[op.outputs[0]].type for op in naming.compute_ops(model)}


def _quantize(float32: bytes, recipe: list, qsvs: dict) -> bytes:
    """The float32 file quantized by AEQ with a raw recipe (a list of rules) and the QSVs given."""
    from ai_edge_quantizer import quantizer

    with quiet.stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantizer.Quantizer(bytearray(float32), recipe)
        return bytes(
            q.quantize(
                qsvs if q.need_calibration else None, enable_progress_report=False
            ).quantized_model
        )


def _default_layer(float32: bytes, keras_model) -> str:
    """The label of the file's first fully connected op, else of its last compute op."""
    model = flatbuffer.read(float32)
    labels = naming.labels(model, keras_model)
    ops = {labels[op.index]: op.name for op in naming.compute_ops(model)}
    return next((label for label, name in ops.items() if name == "FULLY_CONNECTED"), list(ops)[-1])


def _recipe_types(got, float32: bytes, qsvs: dict, keras_model) -> dict[str, str]:
    """`op_types` of the file AEQ writes from the learner's recipe; raises Wrong if `got` is not a
    list of rules or AEQ refuses it."""
    if not isinstance(got, list) or not all(isinstance(rule, dict) for rule in got):
        raise Wrong(f"return the recipe, a list of rules (dicts); got {type(got).__name__}.")
    try:
        return op_types(_quantize(float32, got, qsvs), keras_model)
    except Exception as exc:  # AEQ's own refusal, whatever its type
        raise Wrong(
            f"ai-edge-quantizer refused your recipe: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}"
        ) from exc


def _none_in_float(got: list, base: list, mine: dict, layer: str) -> None:
    """Raise Wrong for a recipe that left every op quantized, naming the slip when it is known."""
    last = [i for i, rule in enumerate(got) if rule.get("regex") == ".*"]
    kept = [i for i, rule in enumerate(got) if rule.get("algorithm_key") == "no_quantize"]
    if kept and last and max(kept) < max(last):
        raise Wrong(
            "every op is quantized: your float rule comes before the `.*` rule, and AEQ "
            "applies the last rule that matches an op."
        )
    if len(got) == len(base):
        raise Wrong(
            "every op is quantized: the recipe came back with only its own rules; append one "
            "for the scope."
        )
    if mine.get(layer) == "INT16":
        raise Wrong(
            f"{layer} is INT16: your rule quantizes its activations to 16 bits; algorithm_key "
            '"no_quantize" leaves it in float.'
        )
    raise Wrong(
        f"every op is quantized ({', '.join(f'{k} {v}' for k, v in mine.items())}); "
        "your rule did not leave one in float."
    )


@feedback.checked("13", hint=RECIPE_HINT)
def check_keep_in_float(keep_in_float, layer: str | None = None, config: TrainConfig | None = None):
    """Checks `keep_in_float(recipe, scope) -> recipe`: AEQ's static int8 recipe with one more rule
    that leaves the op of `scope` in float. The file AEQ writes from it must have the same op types
    as the one from `qlab.conversion.aeq.recipe("static_wi8_ai8", {layer: "float"})`.

    Args:
        layer: the op to keep (default: the first fully connected op of the file, else its last op).
        config: the float model (default: `TrainConfig()`, notebook 01's), from the cache.

    Returns:
        the message for a right answer.

    Raises:
        Wrong: not a list of rules; AEQ refuses it; an op's type differs (named slips: the float
            rule before the `.*` one, the recipe unchanged, another op matched, int16, not float).
        Unanswered: the function returns a placeholder.
    """
    keras_model, float32, qsvs = _model(config or TrainConfig())
    scopes = aeq.op_scopes(float32, keras_model)
    if layer is None:
        layer = _default_layer(float32, keras_model)
    base = aeq.recipe("static_wi8_ai8")
    got = feedback.answered(keep_in_float(copy.deepcopy(base), scopes[layer]))
    mine = _recipe_types(got, float32, qsvs, keras_model)
    want = op_types(
        aeq.quantize(
            float32,
            "static_wi8_ai8",
            qsvs=qsvs,
            precisions={layer: "float"},
            keras_model=keras_model,
        ),
        keras_model,
    )
    if mine == want:
        return (
            f"{layer} stays FLOAT32 and every other op is as qlab.conversion.aeq.recipe makes it "
            f"({', '.join(f'{k} {v}' for k, v in mine.items())})."
        )
    floats = [label for label, t in mine.items() if t == "FLOAT32"]
    if not floats:
        _none_in_float(got, base, mine, layer)
    raise Wrong(
        f"in float: {', '.join(floats)}; expected {layer} alone ("
        + ", ".join(f"{k} {v}" for k, v in want.items())
        + "). Match the op's scope with the regex given."
    )


CHEAPEST_HINT = (
    "keep the rows with 100 * (accuracy - float_accuracy) >= -tolerance_pp (accuracy is 0..1, "
    "the tolerance in percentage points), then the smallest size_bytes; between equal sizes, the "
    "more accurate"
)


def _points() -> tuple[pd.DataFrame, float]:
    """A hand-made table of configurations (config, size_bytes, accuracy 0..1) and its float
    accuracy: a smaller file just outside each tolerance, a tie in size, and small files a few and
    many pp below float."""
    float_accuracy = 435 / 450
    rows = [
        ("float32", 134856, 0),
        ("all_int8", 41400, -2),
        ("all_int16", 42080, -1),
        ("dense float", 53640, 0),
        ("dense int16", 41900, -3),
        ("probs float", 53640, +1),
        ("conv1 int4", 30000, -30),
        ("all int4", 20000, -60),
        ("every op float", 134976, 0),
        ("probs int16", 41650, -1),
    ]
    table = pd.DataFrame(
        [{"config": c, "size_bytes": s, "accuracy": float_accuracy + d / 450} for c, s, d in rows]
    )
    return table, float_accuracy


def _cheapest_cases(table: pd.DataFrame | None) -> list[tuple]:
    """(points, float accuracy, tolerance pp) to check: the hand-made table at 0.1 and 0.5 pp, then
    the notebook's AEQ rows of each setting at 0.1 pp."""
    cases = [(*_points(), tol) for tol in (0.1, 0.5)]
    if table is not None:
        mine = table[table.kind != "converter"] if "kind" in table else table
        for _, part in mine.groupby("setting", sort=False) if "setting" in mine else [(None, mine)]:
            cases.append((part.reset_index(drop=True), float(part.float_accuracy.iloc[0]), 0.1))
    return cases


def _not_cheapest(got, best, float_accuracy: float, tol: float) -> None:
    """Raise Wrong for a row `got` that is not `best`, saying why it is not the answer."""
    size, accuracy = float(got["size_bytes"]), float(got["accuracy"])
    pp = 100 * (accuracy - float_accuracy)
    where = f"tolerance {tol} pp, float {100 * float_accuracy:.2f} %"
    if -100 * tol <= pp < -tol - 1e-9:
        raise Wrong(
            f"{where}: your row ({got.get('config', '?')}) is {pp:+.2f} pp from float, beyond "
            "the tolerance but within it read as a fraction: accuracy is 0..1, so compare "
            "100 × the difference with it."
        )
    if pp < -tol - 1e-9:
        raise Wrong(
            f"{where}: your row ({got.get('config', '?')}) is {pp:+.2f} pp from float, beyond "
            "the tolerance; keep only the rows within it before taking the smallest."
        )
    if size == float(best["size_bytes"]):
        raise Wrong(
            f"{where}: your row has the right size, {size:,.0f} bytes, but another of that "
            "size is more accurate; break ties by accuracy."
        )
    if size > float(best["size_bytes"]):
        raise Wrong(
            f"{where}: your row is {size:,.0f} bytes, but {best['config']} "
            f"({best['size_bytes']:,.0f} bytes, "
            f"{100 * (best['accuracy'] - float_accuracy):+.2f} pp) is within the tolerance "
            "and smaller."
        )
    raise Wrong(
        f"{where}: expected {best['config']} ({best['size_bytes']:,.0f} bytes), got "
        f"{size:,.0f} bytes."
    )


@feedback.checked("13", hint=CHEAPEST_HINT)
def check_cheapest(cheapest_within, table: pd.DataFrame | None = None):
    """Checks `cheapest_within(table, float_accuracy, tolerance_pp) -> row or None` against
    `qlab.analysis.precision.cheapest` on a hand-made table with tolerances 0.1 and 0.5 pp (and on
    `table`, the notebook's, if given: its AEQ rows, per setting).

    Returns:
        the message for a right answer.

    Raises:
        Wrong: a different row (the message says why it is not the answer: beyond the tolerance, a
            smaller one within it, a tie broken the wrong way), or None where a row qualifies.
        Unanswered: the function returns a placeholder.
    """
    cases = _cheapest_cases(table)
    for points, float_accuracy, tol in cases:
        got = feedback.answered(cheapest_within(points.copy(), float_accuracy, tol))
        best = precision.cheapest(points.to_dict("records"), float_accuracy, tol)
        if isinstance(got, pd.DataFrame) and len(got) == 1:
            got = got.iloc[0]
        if not isinstance(got, (pd.Series, dict)):
            raise Wrong(
                f"return the chosen row (table.loc[...] or a dict); got {type(got).__name__}."
            )
        size, accuracy = float(got["size_bytes"]), float(got["accuracy"])
        if (size, accuracy) != (float(best["size_bytes"]), float(best["accuracy"])):
            _not_cheapest(got, best, float_accuracy, tol)
    return (
        f"the same row as qlab.analysis.precision.cheapest in all {len(cases)} tables "
        "(tolerances 0.1 and 0.5 pp" + (", and the notebook's)." if table is not None else ").")
    )


RANKING_HINT = (
    "quantize_one: the effect is the file's output error, largest first; float_one: the effect "
    "is the error removed, all-int8's output_mse minus the file's, so the smallest output_mse "
    "comes first"
)
HIDDEN = ("rank", "effect_mse")
"""The columns `check_sensitivity_ranking` takes out of the table it hands the learner."""


@functools.lru_cache(maxsize=2)
def _sensitivity(config: TrainConfig) -> pd.DataFrame:
    """Both ways of `qlab.studies.sensitivity.measure` for `config` (model and seed), run once."""
    with quiet.stderr():
        return pd.DataFrame(
            [
                row
                for way in sensitivity.SETTINGS
                for row in sensitivity.measure(
                    {"model": config.model, "seed": config.seed, "setting": way}
                )
            ]
        )


def _misranked(way: str, part: pd.DataFrame, got: list, effects: list) -> None:
    """Raise Wrong for layers `got` (with `effects`) not in decreasing effect, naming the slip."""
    truth = list(part.sort_values("rank").layer)
    outputs = dict(zip(part.layer, part.output_mse))
    if way == "float_one" and all(outputs[a] >= outputs[b] for a, b in zip(got, got[1:])):
        raise Wrong(
            "float_one: you put the largest output error first, but there a large error "
            "means keeping that layer float removed little; expected " + ", ".join(truth) + "."
        )
    if all(a <= b for a, b in zip(effects, effects[1:])):
        raise Wrong(f"{way}: you listed the least sensitive first; expected {', '.join(truth)}.")
    raise Wrong(f"{way}: expected {', '.join(truth)} (qlab's ranks), got {', '.join(got)}.")


@feedback.checked("13", hint=RANKING_HINT)
def check_sensitivity_ranking(ranking, table: pd.DataFrame | None = None):
    """Checks `ranking(table, way) -> [layer, ...]`, most sensitive first, for both ways, against
    the ranks of `qlab.analysis.precision.sensitivity`. The learner's function gets the table
    without its `HIDDEN` columns, rows shuffled; ties in effect may come in any order.

    Args:
        table: the sensitivity study's rows (default: `qlab.studies.sensitivity.measure` for
            `TrainConfig()`, both ways).

    Returns:
        the message for a right answer.

    Raises:
        Wrong: not the layers of the table; an order the effects do not give (named slips: least
            sensitive first, float_one ranked by the largest output error).
        Unanswered: the function returns a placeholder.
    """
    table = _sensitivity(TrainConfig()) if table is None else table
    shown = table.drop(columns=[c for c in HIDDEN if c in table]).sample(frac=1.0, random_state=13)
    for way, part in table.groupby("setting", sort=False):
        got = feedback.answered(ranking(shown.copy(), way))
        got = [str(layer) for layer in (got.tolist() if hasattr(got, "tolist") else list(got))]
        effect = dict(zip(part.layer, part.effect_mse))
        if sorted(got) != sorted(effect):
            raise Wrong(
                f"{way}: return each of the {len(effect)} layers of that way once; got {got}."
            )
        effects = [effect[layer] for layer in got]
        if not all(a >= b for a, b in zip(effects, effects[1:])):
            _misranked(way, part, got, effects)
    return "both rankings match qlab's ranks: " + "; ".join(
        f"{way}: {', '.join(part.sort_values('rank').layer)}"
        for way, part in table.groupby("setting", sort=False)
    )
