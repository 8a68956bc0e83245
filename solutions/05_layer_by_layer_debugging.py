"""Solutions to the checked exercises of notebook 05 (layer-by-layer debugging), with the slips the
checks name.

Hand this out after the session. `rmse_in_lsb` is the debugger's mean_squared_error (per image, then
averaged over images) turned into output steps, the `rmse/scale` column of qlab's tables;
`worst_layer` reads that column.
"""

import numpy as np


def rmse_in_lsb(float_out, deployed_out, scale):
    """Root-mean-square error in output steps (LSB), averaged over images as the debugger does."""
    diff = (np.asarray(deployed_out, np.float64) - np.asarray(float_out, np.float64)).reshape(
        len(float_out), -1
    )
    mean_squared_error = np.mean(np.mean(diff**2, axis=1))
    return float(np.sqrt(mean_squared_error) / scale)


def worst_layer(table):
    """The layer whose error is largest in steps of its own output grid."""
    return str(table.loc[table["rmse/scale"].idxmax(), "layer"])


# -- typical slips ---------------------------------------------------------------------------------
def rmse_in_real_units(float_out, deployed_out, scale):
    return float(np.sqrt(np.mean((np.asarray(deployed_out) - np.asarray(float_out)) ** 2)))


def mean_of_image_rmse(float_out, deployed_out, scale):
    diff = (np.asarray(deployed_out) - np.asarray(float_out)).reshape(len(float_out), -1)
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=1))) / scale)


def worst_by_mean_squared_error(table):
    return str(table.loc[table["mean_squared_error"].idxmax(), "layer"])


def worst_as_index(table):
    return int(table["rmse/scale"].idxmax())


SOLUTIONS = {
    "check_rmse_in_lsb": rmse_in_lsb,
    "check_worst_layer": worst_layer,
}
MISTAKES = {
    "check_rmse_in_lsb": [rmse_in_real_units, mean_of_image_rmse],
    "check_worst_layer": [worst_by_mean_squared_error, worst_as_index],
}
