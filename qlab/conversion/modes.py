"""The one table of post-training modes: what each means and how to set the converter for it.
Adding a mode is adding a row."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from qlab.vocabulary import TRAININGS


@dataclass(frozen=True)
class Mode:
    """One way to convert a Keras model to a .tflite."""

    name: str
    summary: str
    weights: str  # dtype the weights are stored in
    activations: str  # dtype the activations are computed in
    io: str  # dtype of the model's input and output tensors
    optimize: bool  # converter.optimizations = [tf.lite.Optimize.DEFAULT]
    supported_types: tuple[str, ...] = ()  # converter.target_spec.supported_types
    supported_ops: tuple[str, ...] = ()  # names in tf.lite.OpsSet
    needs_calibration: bool = False  # a representative dataset is required
    qat: bool = False  # a quantization-aware-trained model converts in this mode too
    published: str | None = None  # the article's name for it, if its table has a row


class ModeTable(dict):
    """The post-training modes of the TFLite converter, name -> `Mode` (what it stores, how the
    converter is set for it). `list(qlab.MODES)` names them, `qlab.conversion.modes.table()` shows
    each row, and `qlab.quantize(model, name, calibration)` converts in one."""


MODES: ModeTable = ModeTable(
    {
        m.name: m
        for m in (
            Mode(
                "float32",
                "no optimization: float32 weights and float32 math (the baseline)",
                weights="float32",
                activations="float32",
                io="float32",
                optimize=False,
            ),
            Mode(
                "dynamic_range",
                "int8 weights; activations quantized on the fly where a kernel allows, else float",
                weights="int8",
                activations="float32",
                io="float32",
                optimize=True,
                published="Dynamic Range Quantization",
            ),
            Mode(
                "float16",
                "float16 weights, dequantized to float32 at load time; float32 math",
                weights="float16",
                activations="float32",
                io="float32",
                optimize=True,
                supported_types=("float16",),
                published="Float-16 Quantization",
            ),
            Mode(
                "full_integer",
                "int8 weights and activations, float fallback for ops without int8 kernels, "
                "float I/O",
                weights="int8",
                activations="int8",
                io="float32",
                optimize=True,
                needs_calibration=True,
                qat=True,
                published="Full Integer with float fallback",
            ),
            Mode(
                "integer_only",
                "int8 everywhere, int8 input and output; fails if an op has no int8 kernel",
                weights="int8",
                activations="int8",
                io="int8",
                optimize=True,
                supported_ops=("TFLITE_BUILTINS_INT8",),
                needs_calibration=True,
                qat=True,
                published="Full Integer (Integer only)",
            ),
            Mode(
                "integer_only_uint8",
                "as integer_only, but uint8 input and output (for older uint8 accelerators)",
                weights="int8",
                activations="int8",
                io="uint8",
                optimize=True,
                supported_ops=("TFLITE_BUILTINS_INT8",),
                needs_calibration=True,
                qat=True,
            ),
            Mode(
                "int16x8",
                "int8 weights, int16 activations (more activation precision), float I/O",
                weights="int8",
                activations="int16",
                io="float32",
                optimize=True,
                supported_ops=("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",),
                needs_calibration=True,
            ),
        )
    }
)
NOTHING_QUANTIZED = (
    "the converter left every tensor of this file in float: a float32 or float16 file, or a "
    "dynamic_range one whose weights are all too small (that mode skips weight tensors under "
    "about 1,024 values: minimum_elements_for_weights, prepare_quantize_dynamic_range.cc)"
)
"""Why a file has no quantized tensor; the text of every error and note that says so."""


def get(name: str) -> Mode:
    """Returns the `Mode` called `name` (a `Mode` as it is); raises ValueError listing the valid
    names for an unknown one."""
    if isinstance(name, Mode):
        return name
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown mode {name!r}; valid modes: {', '.join(MODES)}") from None


def for_training(training: str) -> list[Mode]:
    """Returns the `Mode` rows a model of this training converts in (QAT: the integer modes).

    Raises ValueError for a training not in `qlab.vocabulary.TRAININGS`.
    """
    if training not in TRAININGS:
        raise ValueError(f"unknown training {training!r}; valid: {', '.join(TRAININGS)}")
    return [m for m in MODES.values() if training == "float" or m.qat]


def table() -> pd.DataFrame:
    """Returns the mode table: one row per mode indexed by name, a column per `Mode` field."""
    return pd.DataFrame([asdict(m) for m in MODES.values()]).set_index("name")
