"""Solutions to the checked exercises of notebook 08 (bring your own model), with the slips the
checks name.

Hand this out after the session. `qlab_workshop.exercises.any_model.model_io` and
`accuracy_change_truth` hold the same answers, for comparison.
"""

import qlab
from qlab.training import fit


def describe(model):
    """(sample shape without the batch axis, number of classes, whether the output is logits), read
    from the model: logits when qlab would train it with cross-entropy on logits (no softmax)."""
    from_logits = fit.loss_for(model).get_config()["from_logits"]
    return tuple(model.input_shape[1:]), model.output_shape[-1], from_logits


def accuracy_change(model, mode, calibration, dataset):
    """Test accuracy of `model` converted in `mode` minus that of its float32 file, in percentage
    points, both measured on LiteRT (the conversions are cached)."""
    float32 = qlab.quantize(model, "float32")
    quantized = qlab.quantize(model, mode, calibration)
    x, y = dataset.x_test, dataset.y_test
    return 100 * (qlab.accuracy(quantized, x, y) - qlab.accuracy(float32, x, y))


# -- typical slips ---------------------------------------------------------------------------------
def describe_with_batch_axis(model):
    return (
        model.input_shape,
        model.output_shape[-1],
        fit.loss_for(model).get_config()["from_logits"],
    )


def describe_digits(model):
    return (8, 8, 1), 10, False


def describe_output_shape(model):
    return (
        tuple(model.input_shape[1:]),
        model.output_shape,
        fit.loss_for(model).get_config()["from_logits"],
    )


def accuracy_change_as_fraction(model, mode, calibration, dataset):
    return accuracy_change(model, mode, calibration, dataset) / 100


def accuracy_change_reversed(model, mode, calibration, dataset):
    return -accuracy_change(model, mode, calibration, dataset)


def accuracy_change_default_calibration(model, mode, calibration, dataset):
    from qlab.training import data

    return accuracy_change(model, mode, data.calibration(dataset.x_train), dataset)


SOLUTIONS = {
    "check_model_io": describe,
    "check_accuracy_change": accuracy_change,
}
MISTAKES = {
    "check_model_io": [describe_with_batch_axis, describe_digits, describe_output_shape],
    "check_accuracy_change": [
        accuracy_change_as_fraction,
        accuracy_change_reversed,
        accuracy_change_default_calibration,
    ],
}
