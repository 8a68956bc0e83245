"""The probe study (`sweep_probe`) with shared preparation: `prepare_key` gives every seed of a
model one key, so the engine calls `prepare` once per model, whatever the seeds."""

from sweep_probe import MODELS, SETTINGS, VERSION, check, headline, measure, prepare, summary  # noqa: F401

NAME = "probe-shared"


def prepare_key(model, seed):
    return (model, 0)
