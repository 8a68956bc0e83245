"""ai-edge-quantizer (AEQ): quantize a float32 .tflite *after* conversion, with AEQ's recipes, per op
if asked, and compare files tensor by tensor with AEQ's own `validate()`.

AEQ reads the float file, decides a quantization per op from a *recipe* (a list of
{regex, operation, algorithm_key, op_config} entries; the last entry whose regex matches an op's
*scope* wins) and writes a new flatbuffer. An op's scope is its output tensor names joined by ';',
with a trailing ';' (`get_op_scope`, ai_edge_quantizer/utils/tfl_flatbuffer_utils.py), so one op
is addressed by the regex '^' + re.escape(scope) + '$' (`op_scopes`). AEQ keeps the float file's
tensor names, which is how qlab lines up tensors across the two files (and how `validate` does).

Static recipes need activation ranges, AEQ's *QSVs* ({tensor name: {"min", "max"}}). AEQ's own
`calibrate` keeps a moving average of each sample's min and max (smoothing 0.95,
`moving_average_update`, ai_edge_quantizer/utils/qsv_utils.py), not the converter's running min and
max; `quantize(..., qsvs=...)` takes ranges computed any other way. AEQ builds int8 activations
asymmetric and int16 ones symmetric (`add_static_config`, ai_edge_quantizer/recipe_manager.py).

AEQ is imported when a function here first runs, never by `import qlab`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import warnings

import numpy as np

from qlab.infra import quiet
from qlab.tflite import flatbuffer, naming
from qlab.tflite.runtime import Runtime

log = logging.getLogger(__name__)

RECIPES = {
    "dynamic_wi8_afp32": "int8 weights per channel; activations float, quantized on the fly per batch",
    "dynamic_wi4_afp32": "int4 weights per channel; activations float, quantized on the fly per batch",
    "weight_only_wi8_afp32": "int8 weights per channel, dequantized to float before each op",
    "weight_only_wi4_afp32": "int4 weights per channel, dequantized to float before each op",
    "static_wi8_ai8": "int8 weights per channel, int8 activations (asymmetric) from calibration",
    "static_wi8_ai16": "int8 weights per channel, int16 activations (symmetric) from calibration",
}
"""AEQ's recipes that qlab runs (the names of `ai_edge_quantizer.recipe`'s functions) → what each does."""
STATIC = ("static_wi8_ai8", "static_wi8_ai16")
"""The recipes that quantize activations, and so need calibration."""
PRECISIONS = ("int8", "int16", "float")
"""Per-op choices of a mixed-precision recipe: int8 or int16 activations (int8 weights), or float."""
METRICS = ("mse", "snr", "cosine_similarity")
"""The `ValidationErrorMetric`s `validate` asks AEQ for (ai_edge_quantizer/utils/validation_utils.py)."""


def constraints() -> dict[str, str]:
    """The ops whose quantization AEQ ties to something other than their own range.

    Source: `get_constrained_op_list`, ai_edge_quantizer/utils/constrained_ops_utils.py (reshape,
    pooling, ... share their input's scale; concatenation, ... give their inputs the output's;
    softmax, logistic and tanh get the fixed output grids LiteRT's kernels require).

    Returns:
        {TFLite op name (e.g. "RESHAPE"): "same_as_input_scale", "same_as_output_scale" or
        "fixed_output_scale"}.
    """
    from ai_edge_quantizer.algorithms.utils import common_utils
    from ai_edge_quantizer.utils import constrained_ops_utils

    found = {}
    for constraint in common_utils.OpQuantConstraint:
        if constraint != common_utils.OpQuantConstraint.NO_CONSTRAIN:
            for op in constrained_ops_utils.get_constrained_op_list(constraint):
                found[str(getattr(op, "value", op))] = constraint.name.lower()
    return found


class AEQError(ValueError):
    """ai-edge-quantizer refused a model or recipe; the message carries AEQ's own reason."""


def check_recipe(name: str) -> str:
    """`name` if it is one of `RECIPES`.

    Returns:
        the name.

    Raises:
        ValueError: an unknown recipe, listing the valid ones.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown ai-edge-quantizer recipe {name!r}; valid: {', '.join(RECIPES)}")
    return name


def signature(float32_tflite: bytes) -> tuple[str, str]:
    """The signature key and its one input's name, which AEQ's calibration and validation data use.

    Returns:
        (signature key, input name), both str.

    Raises:
        ValueError: a file with no signature, or a signature with more than one input (qlab feeds
            one input array).
    """
    signatures = Runtime(float32_tflite).interpreter.get_signature_list()
    if not signatures:
        raise ValueError(
            "this .tflite has no signature, and ai-edge-quantizer feeds models through one; "
            "convert it from a Keras model or SavedModel"
        )
    key = next(iter(signatures))
    inputs = signatures[key]["inputs"]
    if len(inputs) != 1:
        raise ValueError(
            f"signature {key!r} has {len(inputs)} inputs ({', '.join(inputs)}); qlab feeds "
            "ai-edge-quantizer models with exactly one input"
        )
    return key, inputs[0]


def samples(float32_tflite: bytes, x: np.ndarray) -> dict:
    """`x` as AEQ's calibration or test data: one batch-of-one dict per sample.

    Returns:
        {signature key: [{input name: float32 array (1,) + sample shape}, ...]}.

    Raises:
        ValueError: see `signature`.
    """
    key, name = signature(float32_tflite)
    return {key: [{name: np.asarray(s, np.float32)[None]} for s in x]}


def op_scopes(float32_tflite: bytes, keras_model=None) -> dict[str, str]:
    """The regex that addresses each compute op in an AEQ recipe, by qlab's layer label.

    Source: AEQ's op scope is the op's output tensor names joined by ';' plus a trailing ';'
    (`get_op_scope`, ai_edge_quantizer/utils/tfl_flatbuffer_utils.py), matched with `re.search`.

    Returns:
        {layer label (`qlab.tflite.naming.labels`): '^<escaped scope>$'}, in op order.
    """
    model = _read(float32_tflite)
    labels = naming.labels(model, keras_model)
    scopes = {}
    for op in naming.compute_ops(model):
        names = [model.tensors[i].name for i in op.outputs if i >= 0 and model.tensors[i].name]
        scopes[labels[op.index]] = "^" + re.escape(";".join(names) + ";") + "$"
    return scopes


def recipe(
    name: str = "static_wi8_ai8",
    precisions: dict[str, str] | None = None,
    float32_tflite: bytes | None = None,
    keras_model=None,
) -> list[dict]:
    """An AEQ recipe: recipe `name` for every op, then one entry per op of `precisions`.

    Args:
        precisions: {layer label: one of `PRECISIONS`}: that op's activations in int8 or int16 (int8
            weights, static), or left in float. Needs `float32_tflite` to find the ops.

    Returns:
        the recipe, AEQ's list of dicts (JSON-able).

    Raises:
        ValueError: an unknown recipe or precision, or a label that is not a layer (listing them).
    """
    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer import recipe as recipes

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(getattr(recipes, check_recipe(name))())
    if precisions:
        scopes = op_scopes(float32_tflite, keras_model)
        everything = qtyping.TFLOperationName.ALL_SUPPORTED
        for label, precision in precisions.items():
            if label not in scopes:
                raise ValueError(
                    f"no layer {label!r} in this model; its layers are: {', '.join(scopes)}"
                )
            if precision == "float":
                manager.add_quantization_config(
                    scopes[label], everything, algorithm_key="no_quantize"
                )
            elif precision in ("int8", "int16"):
                manager.add_static_config(scopes[label], everything, int(precision[3:]), 8)
            else:
                raise ValueError(
                    f"unknown precision {precision!r} for layer {label!r}; valid: {', '.join(PRECISIONS)}"
                )
    return manager.get_quantization_recipe()


def calibrate(float32_tflite: bytes, x: np.ndarray, name: str = "static_wi8_ai8") -> dict:
    """AEQ's own calibration of every activation the recipe quantizes (moving-average min and max).

    Returns:
        AEQ's QSVs: {tensor name: {"min": float32 array, "max": float32 array}}.

    Raises:
        AEQError: AEQ cannot run the model (its reason); ValueError: see `samples`.
    """
    return _calibrate(_quantizer(float32_tflite, recipe(name)), float32_tflite, x)


def _calibrate(quantizer, float32_tflite: bytes, x: np.ndarray) -> dict:
    data = samples(float32_tflite, x)
    try:
        with _held_back():
            return quantizer.calibrate(data, num_threads=1)
    except Exception as exc:  # AEQ's own failure, whatever its type: passed on with its reason
        raise AEQError(
            f"ai-edge-quantizer could not calibrate this model: {type(exc).__name__}: {exc}"
            f"{_hint(float32_tflite)}"
        ) from exc


@contextlib.contextmanager
def _held_back():
    """AEQ's progress bars (stderr), and LiteRT's warning that AEQ keeps every tensor (its point)."""
    with quiet.stderr(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        yield


def _read(tflite) -> flatbuffer.ModelFile:
    """`flatbuffer.read`, memoised (read only): a search quantizes one float32 file hundreds of times."""
    return _parsed(flatbuffer.check_tflite(tflite))


_parsed = functools.lru_cache(maxsize=4)(flatbuffer.read)


def _hint(float32_tflite: bytes) -> str:
    """What qlab can add to AEQ's reason."""
    if any(t.type == "FLOAT16" for t in _read(float32_tflite).tensors):
        return " (this file stores float16 weights; AEQ reads float32 files: convert with mode 'float32')"
    return ""


def quantize(
    float32_tflite: bytes,
    name: str = "static_wi8_ai8",
    calibration: np.ndarray | None = None,
    qsvs: dict | None = None,
    precisions: dict[str, str] | None = None,
    keras_model=None,
) -> bytes:
    """A float32 .tflite quantized by AEQ's recipe `name` (and per-op `precisions`, see `recipe`).

    Args:
        calibration: samples (n,) + input shape, for static recipes: AEQ's `calibrate` runs on them.
        qsvs: activation ranges to use instead of calibrating ({tensor name: {"min", "max"}}).

    Returns:
        the quantized .tflite bytes.

    Raises:
        ValueError: an unknown recipe or precision; a static recipe with neither calibration nor qsvs.
        AEQError: AEQ refused the model (its reason).
    """
    float32_tflite = flatbuffer.check_tflite(float32_tflite)
    if any(t.quantized for t in _read(float32_tflite).tensors):
        raise AEQError(
            "ai-edge-quantizer quantizes float models: give the float32 .tflite, not a quantized one"
        )
    steps = recipe(name, precisions, float32_tflite, keras_model)
    quantizer = _quantizer(float32_tflite, steps)
    if quantizer.need_calibration and qsvs is None:
        if calibration is None:
            raise ValueError(
                f"recipe {name} quantizes activations: give calibration samples or qsvs"
            )
        qsvs = _calibrate(quantizer, float32_tflite, calibration)
    try:
        with _held_back():
            result = quantizer.quantize(
                qsvs if quantizer.need_calibration else None, enable_progress_report=False
            )
    except Exception as exc:  # AEQ's own failure, whatever its type: passed on with its reason
        raise AEQError(
            f"ai-edge-quantizer could not quantize this model with {name}: "
            f"{type(exc).__name__}: {exc}{_hint(float32_tflite)}"
        ) from exc
    quantized = bytes(result.quantized_model)
    if _hint(float32_tflite) and not any(t.quantized for t in flatbuffer.read(quantized).tensors):
        raise AEQError(
            f"ai-edge-quantizer quantized nothing in this file with {name}{_hint(float32_tflite)}"
        )
    return quantized


def validate(float32_tflite: bytes, quantized_tflite: bytes, x: np.ndarray) -> list[dict]:
    """AEQ's `validate()`: both files run on the same samples, every tensor compared by name.

    AEQ runs the two whole models side by side (qlab's *accumulated* view) and, per tensor and
    metric, averages a per-sample value over samples (`compare_model`,
    ai_edge_quantizer/model_validator.py); it compares constants (weights) too.

    Returns:
        one dict per tensor: tensor (name), kind ("input", "output", "constant" or "intermediate")
        and the `METRICS` (mse in real units squared, snr as a power ratio (mean(float²) / mse, not dB), cosine_similarity in [-1, 1]).

    Raises:
        AEQError: AEQ cannot run the pair (its reason).
    """
    from ai_edge_quantizer.utils import validation_utils

    quantizer = _quantizer(float32_tflite, None, quantized_tflite)
    metrics = [validation_utils.ValidationErrorMetric(m) for m in METRICS]
    key, _ = signature(float32_tflite)
    try:
        with _held_back():
            result = quantizer.validate(
                samples(float32_tflite, x), error_metrics=metrics, num_threads=1
            )
    except Exception as exc:  # AEQ's own failure, whatever its type: passed on with its reason
        raise AEQError(
            f"ai-edge-quantizer could not validate this pair: {type(exc).__name__}: {exc}"
        ) from exc
    compared = result.get_signature_comparison_result(key)
    rows = []
    for kind in ("input", "output", "constant", "intermediate"):
        for tensor, values in getattr(compared, f"{kind}_tensors").items():
            rows.append(
                {
                    "tensor": tensor,
                    "kind": kind,
                    **{m: float(values.get(m, np.nan)) for m in METRICS},
                }
            )
    return rows


def _quantizer(float32_tflite: bytes, steps, previous: bytes | None = None):
    from ai_edge_quantizer import quantizer

    try:
        return quantizer.Quantizer(
            bytearray(float32_tflite), steps, None if previous is None else bytearray(previous)
        )
    except Exception as exc:  # AEQ's own failure, whatever its type: passed on with its reason
        raise AEQError(
            f"ai-edge-quantizer could not read this model: {type(exc).__name__}: {exc}"
        ) from exc
