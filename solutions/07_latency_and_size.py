"""Solutions to the checked exercises of notebook 07 (latency and size), with the slips the checks
name.

Hand this out after the session. `qlab.perf.bench.round_ratios` computes the per-round ratios, and
`qlab.perf.sizes.breakdown` counts every byte of a file, for comparison.
"""

import numpy as np


def median_ratio(times, base_times):
    """A model's latency over its baseline's from interleaved rounds: one ratio of medians per
    round, then the median of those ratios with their min and max."""
    ratios = [np.median(t) / np.median(b) for t, b in zip(times, base_times)]
    return float(np.median(ratios)), float(np.min(ratios)), float(np.max(ratios))


def gmac_per_s(macs, latency_us):
    """A MAC rate in GMAC/s: the multiply-accumulates over the seconds they took, over 1e9."""
    return macs / (latency_us * 1e-6) / 1e9


def per_tensor_saving(model):
    """Bytes the quantization parameters shrink by with one weight scale per tensor: every conv or
    dense kernel and its bias keep one float32 scale and one int64 zero point instead of one per
    output channel (the kernel's last axis)."""
    spare = sum(layer.kernel.shape[-1] - 1 for layer in model.layers if hasattr(layer, "kernel"))
    return 2 * spare * (4 + 8)  # the kernel's and the bias's parameters


# -- typical slips ---------------------------------------------------------------------------------
def median_ratio_pooled(times, base_times):
    ratio = np.median(np.concatenate(times)) / np.median(np.concatenate(base_times))
    return ratio, ratio, ratio


def median_ratio_of_means(times, base_times):
    ratios = [np.mean(t) / np.mean(b) for t, b in zip(times, base_times)]
    return np.median(ratios), min(ratios), max(ratios)


def median_ratio_inverted(times, base_times):
    return median_ratio(base_times, times)


def gmac_per_s_in_mac_per_s(macs, latency_us):
    return macs / (latency_us * 1e-6)


def gmac_per_s_as_if_ms(macs, latency_us):
    return macs / (latency_us * 1e-3) / 1e9


def gmac_per_s_inverted(macs, latency_us):
    return latency_us / macs


def per_tensor_saving_weights_only(model):
    return per_tensor_saving(model) // 2


def per_tensor_saving_int32_zero_points(model):
    return per_tensor_saving(model) // 12 * 8


def per_tensor_saving_every_channel(model):
    channels = sum(layer.kernel.shape[-1] for layer in model.layers if hasattr(layer, "kernel"))
    return 2 * channels * 12


SOLUTIONS = {
    "check_median_ratio": median_ratio,
    "check_gmac_per_s": gmac_per_s,
    "check_per_tensor_saving": per_tensor_saving,
}
MISTAKES = {
    "check_median_ratio": [median_ratio_pooled, median_ratio_of_means, median_ratio_inverted],
    "check_gmac_per_s": [gmac_per_s_in_mac_per_s, gmac_per_s_as_if_ms, gmac_per_s_inverted],
    "check_per_tensor_saving": [
        per_tensor_saving_weights_only,
        per_tensor_saving_int32_zero_points,
        per_tensor_saving_every_channel,
    ],
}
