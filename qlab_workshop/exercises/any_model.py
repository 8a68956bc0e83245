"""Checked exercises of notebook 08 (bring your own model): read what a model takes and gives from
the model itself, and measure what quantizing a model in a mode costs it, through qlab.

`check_model_io` runs the learner's function on untrained models of different shapes (the zoo's
digits CNN, its LSTM over image rows, its wine MLP, and a small model that outputs logits) and
compares with the Keras model and `qlab.training.fit.loss_for`. `check_accuracy_change` runs the
learner's function on a trained model with a sound and a one-image calibration, and compares with
`qlab.accuracy` of the files `qlab.quantize` converts.
"""

from __future__ import annotations

import numpy as np

from qlab import artifacts
from qlab.tflite import measure
from qlab.training import data, fit, models
from qlab_workshop.exercises import feedback
from qlab_workshop.exercises.feedback import Wrong

IO_HINT = (
    "model.input_shape[1:] (leave out the batch axis), model.output_shape[-1], and whether the "
    "loss qlab trains it with takes logits: fit.loss_for(model).get_config()['from_logits'] (a "
    "model whose last layer has no softmax outputs logits)"
)


def io_models() -> dict:
    """Builders of untrained models of different inputs, class counts and outputs (fresh names).

    Returns:
        {description: function of no arguments returning a tf_keras model}: the digits CNN, the LSTM
        over image rows, the wine MLP (probabilities out), and a small convolutional model on
        (4, 4, 3) inputs with 7 logits out.
    """
    found = {
        f"the zoo's {name}": (lambda name=name: models.build(name))
        for name in ("digits_cnn", "lstm_rows", "wine_mlp")
    }
    found["a small model that outputs logits"] = _logits_model
    return found


def _logits_model():
    import tf_keras as keras  # noqa: PLC0415  (TensorFlow loads lazily)

    with models.fresh_names():
        inputs = keras.Input((4, 4, 3))
        x = keras.layers.GlobalAveragePooling2D()(
            keras.layers.Conv2D(4, 3, activation="relu")(inputs)
        )
        return keras.Model(inputs, keras.layers.Dense(7)(x))


def model_io(model) -> tuple[tuple, int, bool]:
    """What a classifier takes and gives, read from the model.

    Returns:
        (sample shape without the batch axis, number of classes, whether the output is logits:
        `qlab.training.fit.loss_for`'s from_logits).
    """
    loss = fit.loss_for(model)
    logits = bool(getattr(loss, "get_config", lambda: {})().get("from_logits", False))
    return tuple(model.input_shape[1:]), int(model.output_shape[-1]), logits


def _check_shape(what: str, shape, expected: tuple, seen: dict) -> None:
    """Raise Wrong if the learner's sample shape is not a tuple of ints equal to `expected`, naming
    the slip (the batch axis kept, the shape of a model checked before)."""
    try:
        shape = tuple(
            None if v is None else feedback.whole(v, "each dimension of the sample shape", IO_HINT)
            for v in shape
        )
    except (TypeError, ValueError):
        raise Wrong(
            f"{what}: the sample shape should be a tuple of ints, got {shape!r}.", IO_HINT
        ) from None
    if shape != expected:
        slip = (
            " It starts with the batch axis (None): leave it out."
            if shape[:1] == (None,) and shape[1:] == expected
            else f" That is the shape of {seen[shape]}: read it from the model you are given."
            if shape in seen
            else ""
        )
        raise Wrong(f"{what}: the sample shape is {expected}, you gave {shape}.{slip}", IO_HINT)


@feedback.checked("08", hint=IO_HINT)
def check_model_io(describe, model=None):
    """Check the learner's `describe(model) -> (sample shape, classes, logits)` on `io_models()`
    and, if given, on the learner's own model, against `model_io`.

    Returns:
        the message for a right answer.
    Raises:
        Wrong: an answer differs (named slips: the batch axis kept, the output shape instead of the
            class count, one model's values typed in, logits missed).
        Unanswered: the function still returns the placeholder.
    """
    cases = io_models()
    if model is not None:
        cases["your model"] = lambda: model
    seen = {}  # sample shape -> the model checked before that has it
    for what, build in cases.items():
        m = build()
        expected = model_io(m)
        got = feedback.answered(describe(m))
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise Wrong(f"{what}: expected (sample shape, classes, logits), got {got!r}.", IO_HINT)
        shape, classes, logits = got
        _check_shape(what, shape, expected[0], seen)
        seen.setdefault(expected[0], what)
        if isinstance(classes, (tuple, list)) or np.ndim(classes):
            raise Wrong(
                f"{what}: the number of classes is one integer ({expected[1]}); you gave "
                f"{classes!r}, the output shape: take its last axis.",
                IO_HINT,
            )
        if feedback.whole(classes, "the number of classes", IO_HINT) != expected[1]:
            raise Wrong(
                f"{what}: the model scores {expected[1]} classes, you gave {classes!r}.", IO_HINT
            )
        if bool(logits) != expected[2]:
            raise Wrong(
                f"{what}: its output is {'logits' if expected[2] else 'probabilities'} (qlab "
                f"trains it with from_logits={expected[2]}), you gave {logits!r}.",
                IO_HINT,
            )
    return (
        f"all {len(cases)} models match: shapes, class counts and logits read from the models, "
        "nothing typed in."
    )


CHANGE_HINT = (
    "convert with qlab.quantize(model, mode, calibration) and "
    "qlab.quantize(model, 'float32'), measure both with qlab.accuracy(file, "
    "dataset.x_test, dataset.y_test), and return 100 × (quantized − float32): percentage points, "
    "negative when quantizing lost accuracy"
)


def change_cases(model=None, dataset: data.Dataset | None = None) -> tuple:
    """The model, data and calibrations `check_accuracy_change` tries.

    Args:
        model, dataset: a trained model and its data; None: the baseline digits CNN
            (`qlab.training.fit.TrainConfig()`, from the cache) on the digits.

    Returns:
        (model, dataset, {description: (mode, calibration)}): integer_only calibrated on 100
        training images (`qlab.training.data.calibration`) and on one, whose ranges miss most.

    Raises:
        ValueError: a model without its dataset.
    """
    if model is None:
        dataset = data.load()
        model = artifacts.trained(fit.TrainConfig(), dataset, progress=False)
    elif dataset is None:
        raise ValueError("pass the dataset your model was trained on with it")
    return (
        model,
        dataset,
        {
            "integer_only, calibrated on 100 training images": (
                "integer_only",
                data.calibration(dataset.x_train, n=100),
            ),
            "integer_only, calibrated on one image": (
                "integer_only",
                data.calibration(dataset.x_train, n=1),
            ),
        },
    )


def accuracy_change_truth(model, mode: str, calibration, dataset: data.Dataset) -> float:
    """What quantizing `model` in `mode` changes its test accuracy by, on LiteRT.

    Returns:
        percentage points: 100 × (accuracy of the `mode` file − accuracy of the float32 file).
    """
    x, y = dataset.x_test, dataset.y_test
    float32 = artifacts.quantized_model(model, "float32")
    quantized = artifacts.quantized_model(model, mode, calibration)
    return 100 * (measure.accuracy(quantized, x, y) - measure.accuracy(float32, x, y))


@feedback.checked("08", hint=CHANGE_HINT)
def check_accuracy_change(accuracy_change, model=None, dataset: data.Dataset | None = None):
    """Check the learner's `accuracy_change(model, mode, calibration, dataset) -> percentage points`
    against `accuracy_change_truth` on `change_cases(model, dataset)`.

    Args:
        model, dataset: the learner's trained model and data (default: the baseline digits CNN).
    Returns:
        the message for a right answer, with both changes.
    Raises:
        Wrong: a change differs (named slips: a fraction instead of percentage points, the sign
            reversed, the calibration ignored) or is not a number.
        Unanswered: the function still returns the placeholder.
    """
    if model is not None and dataset is None:
        raise Wrong(
            "pass the dataset your model was trained on too: "
            "check_accuracy_change(accuracy_change, model, dataset).",
            CHANGE_HINT,
        )
    model, dataset, cases = change_cases(model, dataset)
    found = {}
    for what, (mode, calibration) in cases.items():
        answer = feedback.answered(accuracy_change(model, mode, calibration.copy(), dataset))
        expected = accuracy_change_truth(model, mode, calibration, dataset)
        try:
            got = (
                float(np.asarray(answer, dtype=np.float64).reshape(-1)[0])
                if np.size(answer) == 1
                else None
            )
        except (TypeError, ValueError):
            got = None
        if got is None:
            raise Wrong(
                f"{what}: expected one number (percentage points), got {answer!r}.", CHANGE_HINT
            )
        if np.isclose(got, expected, rtol=0, atol=1e-6):
            found[what] = expected
            continue
        slips = {
            expected / 100: "that is a fraction: multiply by 100 for percentage points.",
            -expected: (
                "the sign is reversed: the change is quantized minus float32 (negative: a loss)."
            ),
        }
        slip = next(
            (
                text
                for value, text in slips.items()
                if expected != 0 and np.isclose(got, value, atol=1e-6)
            ),
            "",
        )
        if not slip and found and np.isclose(got, next(iter(found.values())), atol=1e-6):
            slip = (
                "it is the same as with the other calibration: pass `calibration` on to the "
                "conversion."
            )
        raise Wrong(
            f"{what}: quantizing changes the test accuracy by {expected:+.2f} pp; you gave "
            f"{got:+.4f}. {slip}".rstrip(),
            CHANGE_HINT,
        )
    shown = "; ".join(f"{what}: {value:+.2f} pp" for what, value in found.items())
    return f"both match LiteRT's accuracies ({shown})."
