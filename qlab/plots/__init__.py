"""One function per figure, each returning a matplotlib Figure, all importable from here
(`from qlab import plots; plots.weight_histograms(...)`). They live in `results` (training and
result tables), `histograms` (values counted on a grid), `errors` (the error a grid makes and
choosing its range), `layers` (per-layer error, integer runs), `perf` (latency and size), and
one module per study (`schemes`, `compression`, `recurrent`, `calibration`, `precision`)."""

from qlab.plots.calibration import calibration_method_figures, calibration_size_figures
from qlab.plots.compression import clustering_figures, pruning_figures
from qlab.plots.errors import (
    before_after,
    before_after_ranges,
    bucket_errors,
    clip_sweep,
    rounding_vs_clipping,
)
from qlab.plots.histograms import (
    activation_histogram,
    activation_histograms,
    weight_histogram,
    weight_histograms,
)
from qlab.plots.layers import (
    channel_ranges,
    error_growth,
    keep_float_tradeoff,
    layer_errors,
    lsb_differences,
    qat_vs_deployed,
)
from qlab.plots.perf import bench_ratios, peak_rates, size_breakdown
from qlab.plots.precision import aeq_figures, mixed_precision_figures, sensitivity_figures
from qlab.plots.recurrent import error_over_time, lstm_types, recurrent_figures
from qlab.plots.results import (
    confusion,
    difference_bars,
    digits,
    measured_vs_published,
    output_error,
    training_curves,
)
from qlab.plots.schemes import bits_figures, delay_figures

__all__ = [
    "activation_histogram",
    "activation_histograms",
    "before_after",
    "before_after_ranges",
    "bucket_errors",
    "clip_sweep",
    "rounding_vs_clipping",
    "weight_histogram",
    "weight_histograms",
    "channel_ranges",
    "error_growth",
    "keep_float_tradeoff",
    "layer_errors",
    "lsb_differences",
    "qat_vs_deployed",
    "bench_ratios",
    "peak_rates",
    "size_breakdown",
    "confusion",
    "difference_bars",
    "digits",
    "measured_vs_published",
    "output_error",
    "training_curves",
    "bits_figures",
    "delay_figures",
    "pruning_figures",
    "clustering_figures",
    "recurrent_figures",
    "lstm_types",
    "error_over_time",
    "calibration_size_figures",
    "calibration_method_figures",
    "aeq_figures",
    "sensitivity_figures",
    "mixed_precision_figures",
]
