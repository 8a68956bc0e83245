"""ai-edge-quantizer (AEQ): quantize a float32 .tflite *after* conversion, with AEQ's recipes, per
op if asked, and compare files tensor by tensor with AEQ's own `validate()`.

A *recipe* is a list of {regex, operation, algorithm_key, op_config} entries; the last entry whose
regex matches an op's *scope* wins. AEQ keeps the float file's tensor names, which is how tensors
line up across the two files. Static recipes need activation ranges, AEQ's *QSVs*
({tensor name: {"min", "max"}}); AEQ's `calibrate` keeps a moving average of each sample's min and
max (smoothing 0.95, `moving_average_update`, ai_edge_quantizer/utils/qsv_utils.py), not the
converter's running min and max. int8 activations are asymmetric, int16 symmetric
(`add_static_config`, ai_edge_quantizer/recipe_manager.py). AEQ is imported lazily.
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
    "dynamic_wi8_afp32": "int8 weights per channel; "
    "activations float, quantized on the fly per batch",
    "dynamic_wi4_afp32": "int4 weights per channel; "
    "activations float, quantized on the fly per batch",
    "weight_only_wi8_afp32": "int8 weights per channel, dequantized to float before each op",
    "weight_only_wi4_afp32": "int4 weights per channel, dequantized to float before each op",
    "static_wi8_ai8": "int8 weights per channel, int8 activations (asymmetric) from calibration",
    "static_wi8_ai16": "int8 weights per channel, int16 activations (symmetric) from calibration",
}
"""AEQ's recipes that qlab runs (`ai_edge_quantizer.recipe`'s function names) → what each does."""
STATIC = ("static_wi8_ai8", "static_wi8_ai16")
"""The recipes that quantize activations, and so need calibration."""
PRECISIONS = ("int8", "int16", "float")
"""Per-op choices of a mixed-precision recipe: int8 or int16 activations (int8 weights), float."""
METRICS = ("mse", "snr", "cosine_similarity")
"""The `ValidationErrorMetric`s `validate` asks for (ai_edge_quantizer/utils/validation_utils)."""


def constraints() -> dict[str, str]:
    """Returns {TFLite op name: "same_as_input_scale", "same_as_output_scale" or
    "fixed_output_scale"} for the ops whose quantization AEQ ties to something but their range.

    Source: `get_constrained_op_list`, ai_edge_quantizer/utils/constrained_ops_utils.py.
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
    """Returns `name` if it is one of `RECIPES`; raises ValueError listing them if not."""
    if name not in RECIPES:
        raise ValueError(f"unknown ai-edge-quantizer recipe {name!r}; valid: {', '.join(RECIPES)}")
    return name


def signature(float32_tflite: bytes) -> tuple[str, str]:
    """Returns (signature key, its one input's name), as AEQ's sample data are keyed.

    Raises ValueError for a file with no signature, or a signature with more than one input.
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
    """Returns {signature key: [{input name: float32 (1,) + sample shape}, ...]}, one per sample.

    Raises ValueError as `signature`.
    """
    key, name = signature(float32_tflite)
    return {key: [{name: np.asarray(s, np.float32)[None]} for s in x]}


def op_scopes(float32_tflite: bytes, keras_model=None) -> dict[str, str]:
    """Returns {layer label: '^<escaped scope>$'}, the regex addressing each compute op, in order.

    Source: AEQ's op scope is the op's output tensor names joined by ';' plus a trailing ';'
    (`get_op_scope`, ai_edge_quantizer/utils/tfl_flatbuffer_utils.py), matched with `re.search`.
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
    """Returns AEQ's recipe (JSON-able list of dicts): `name` for every op, then one entry per
    {layer label: one of `PRECISIONS`} of `precisions` (which needs `float32_tflite`).

    Raises ValueError for an unknown recipe or precision, or a label that is not a layer.
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
                    f"unknown precision {precision!r} for layer {label!r}; "
                    f"valid: {', '.join(PRECISIONS)}"
                )
    return manager.get_quantization_recipe()


def calibrate(float32_tflite: bytes, x: np.ndarray, name: str = "static_wi8_ai8") -> dict:
    """Returns AEQ's QSVs, {tensor name: {"min": float32 array, "max": float32 array}}.

    Raises AEQError if AEQ cannot run the model, ValueError as `samples`.
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
    """Holds back AEQ's progress bars and LiteRT's warning that AEQ keeps every tensor."""
    with quiet.stderr(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        yield


def _read(tflite) -> flatbuffer.ModelFile:
    """`flatbuffer.read`, memoised: a search quantizes one float32 file hundreds of times."""
    return _parsed(flatbuffer.check_tflite(tflite))


_parsed = functools.lru_cache(maxsize=4)(flatbuffer.read)


def _hint(float32_tflite: bytes) -> str:
    """What qlab can add to AEQ's reason."""
    if any(t.type == "FLOAT16" for t in _read(float32_tflite).tensors):
        return (
            " (this file stores float16 weights; AEQ reads float32 files: "
            "convert with mode 'float32')"
        )
    return ""


def quantize(
    float32_tflite: bytes,
    name: str = "static_wi8_ai8",
    calibration: np.ndarray | None = None,
    qsvs: dict | None = None,
    precisions: dict[str, str] | None = None,
    keras_model=None,
) -> bytes:
    """Returns the .tflite bytes AEQ's recipe `name` (and per-op `precisions`) makes. Static
    recipes need `calibration` samples or `qsvs` ranges ({tensor name: {"min", "max"}}).

    Raises ValueError for an unknown recipe or precision, or a static recipe with neither; AEQError
    if AEQ refuses the model.
    """
    float32_tflite = flatbuffer.check_tflite(float32_tflite)
    if any(t.quantized for t in _read(float32_tflite).tensors):
        raise AEQError(
            "ai-edge-quantizer quantizes float models: "
            "give the float32 .tflite, not a quantized one"
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
    """AEQ's `validate()`: both whole models run side by side (the *accumulated* view), each
    tensor's metric averaged over samples (`compare_model`, ai_edge_quantizer/model_validator.py).

    Returns one dict per tensor: tensor, kind ("input", "output", "constant", "intermediate") and
    the `METRICS` (mse in real units squared, snr as mean(float²) / mse (not dB), cosine in
    [-1, 1]). Raises AEQError if AEQ cannot run the pair.
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
