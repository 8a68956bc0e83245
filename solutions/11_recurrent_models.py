"""Solutions to the checked exercises of notebook 11 (recurrent models), with the slips the checks
name.

Hand this out after the session. `rmse_per_step` is what qlab.analysis.recurrent.error_over_time
reports for each time step (the QuantizationDebugger's mean squared error, its root, in output
steps), and `cell_scale` is the converter's power-of-two rule for an LSTM's int16 cell state
(qlab.analysis.converter_grids.cell_state_scale).
"""

import numpy as np


def rmse_per_step(deployed, reference, scale):
    """Root mean squared error per time step (samples and units averaged), in output steps."""
    d = np.asarray(deployed, np.float64) - np.asarray(reference, np.float64)
    return np.sqrt((d**2).mean(axis=(0, 2))) / scale


def cell_scale(max_abs_c):
    """The power of two 2**k whose 2**15 steps just cover max|c|: k = ceil(log2 max|c|) - 15."""
    return 2.0 ** (np.ceil(np.log2(max_abs_c)) - 15)


# -- typical slips ---------------------------------------------------------------------------------
def rmse_per_step_no_scale(deployed, reference, scale):
    d = np.asarray(deployed) - np.asarray(reference)
    return np.sqrt((d**2).mean(axis=(0, 2)))


def rmse_per_step_mean_of_rms(deployed, reference, scale):
    d = np.asarray(deployed) - np.asarray(reference)
    return np.sqrt((d**2).mean(axis=2)).mean(axis=0) / scale


def rmse_per_step_wrong_axis(deployed, reference, scale):
    d = np.asarray(deployed) - np.asarray(reference)
    return np.sqrt((d**2).mean(axis=(1, 2))) / scale


def cell_scale_floor(max_abs_c):
    return 2.0 ** (np.floor(np.log2(max_abs_c)) - 15)


def cell_scale_not_power_of_two(max_abs_c):
    return max_abs_c / 32767


def cell_scale_exponent(max_abs_c):
    return np.ceil(np.log2(max_abs_c)) - 15


SOLUTIONS = {"check_rmse_per_step": rmse_per_step, "check_cell_scale": cell_scale}
MISTAKES = {
    "check_rmse_per_step": [
        rmse_per_step_no_scale,
        rmse_per_step_mean_of_rms,
        rmse_per_step_wrong_axis,
    ],
    "check_cell_scale": [cell_scale_floor, cell_scale_not_power_of_two, cell_scale_exponent],
}
