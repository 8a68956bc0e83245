"""Weight clustering with tensorflow-model-optimization, and cluster-preserving QAT after it.

k-means++ is tfmot's default init, deterministic (seed fixed at 9 in `clustering_centroids.py`);
biases, BatchNorm and DepthwiseConv2D weights are not clustered (`clustering_registry.py`). For a
Conv2D whose output channels hold nearly the same number of distinct values, CQAT takes each
channel's values as its own centroids (`get_centroids`, `cluster_preserve_quantize_registry.py`),
which then train apart: up to `clusters` values per channel (`centroids_per` tells). Plain QAT
after clustering is `qlab.training.pruning.quantize_aware`. The model passed in is never changed.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from qlab.training import fit, models, pruning, qat
from qlab.training.data import Dataset

EPOCHS = 3
LEARNING_RATE = 3e-4
"""Fine-tuning of `cluster`. On digits_cnn with 8 clusters, seeds 0-4: int8 LiteRT accuracy 97.8 %
[97.3-98.2], the float models' 97.8 % [96.9-98.2]; at 1e-3, seed 0 fell to 95.1 % (Keras), 97.3 %
at 3e-4."""
CENTROID_INIT = "KMEANS_PLUS_PLUS"
"""tfmot's default centroid initialisation (its others: LINEAR, DENSITY_BASED, RANDOM)."""


def check_clusters(model, clusters) -> int:
    """Returns `clusters` as an int if `model` can take it: at least 2 and fewer than the weights
    of every kernel tfmot clusters. Raises ValueError otherwise, naming the layer and the largest
    count it takes."""
    if isinstance(clusters, bool) or not isinstance(clusters, (int, np.integer)) or clusters < 2:
        raise ValueError(
            "clusters must be a whole number of 2 or more "
            f"(one centroid leaves every weight equal), got {clusters!r}"
        )
    small = {name: k.size for name, k in pruning.kernels(model).items() if k.size <= clusters}
    if small:
        raise ValueError(
            f"{clusters} clusters are not fewer than the weights of layer "
            f"{', '.join(f'{n!r} ({s})' for n, s in small.items())} of model {model.name!r}, "
            f"and tfmot needs more weights than clusters: pass at most {min(small.values()) - 1}"
        )
    return int(clusters)


def check_clusterable(model) -> None:
    """Refuses layers outside tfmot's `clustering_registry.py` and recurrent layers, each named.

    Raises TypeError, ValueError as `qlab.training.pruning.refuse_layers`.
    """
    from tensorflow_model_optimization.python.core.clustering.keras import (
        clusterable_layer,
        clustering_registry,
    )

    pruning.refuse_layers(
        model,
        lambda layer: (
            clustering_registry.ClusteringRegistry.supports(layer)
            or isinstance(layer, clusterable_layer.ClusterableLayer)
        ),
        "clustering",
    )


def cluster(
    model,
    data: Dataset,
    clusters: int,
    epochs: int = EPOCHS,
    learning_rate: float = LEARNING_RATE,
    batch_size: int = 32,
    seed: int = 0,
    init: str = CENTROID_INIT,
):
    """Clusters a trained float model's kernels (`clusters` centroids each, `init` a name of
    tfmot's `CentroidInitialization`), fine-tunes, and strips the wrappers.

    Returns a new plain tf_keras model whose Conv and Dense kernels hold at most `clusters`
    values. Raises ValueError for a bad count, an unknown init or a layer tfmot cannot cluster;
    TypeError for a model that is not tf_keras.
    """
    import tensorflow_model_optimization as tfmot

    check_clusterable(model)
    clusters = check_clusters(model, clusters)
    inits = tfmot.clustering.keras.CentroidInitialization
    if init not in inits.__members__:
        raise ValueError(
            f"unknown centroid initialisation {init!r}; valid: {', '.join(inits.__members__)}"
        )
    loss = fit.loss_for(model)
    fit.seed_everything(seed)
    plain = pruning.copy(model)
    with models.fresh_names():
        wrapped = tfmot.clustering.keras.cluster_weights(
            plain, number_of_clusters=clusters, cluster_centroids_init=inits[init]
        )
    pruning.fine_tune(wrapped, data, epochs, learning_rate, loss, batch_size)
    with models.fresh_names():
        return tfmot.clustering.keras.strip_clustering(wrapped)


def unique_values(model) -> dict[str, tuple[int, int]]:
    """Returns {layer name: (distinct values in the kernel, the most any output channel holds)}."""
    return {
        name: (len(np.unique(k)), max(len(np.unique(k[..., c])) for c in range(k.shape[-1])))
        for name, k in pruning.kernels(model).items()
    }


def check_clustered(model, clusters: int) -> None:
    """Raises ValueError, naming the kernels and what to do, if a kernel holds more than
    `clusters` distinct values (tfmot would take every value as a centroid)."""
    over = {name: n for name, (n, _) in unique_values(model).items() if n > clusters}
    if over:
        raise ValueError(
            "cluster-preserving QAT keeps the clusters of a clustered model, "
            f"and model {model.name!r} has more "
            f"than {clusters} distinct values in kernel "
            f"{', '.join(f'{n} ({v:,})' for n, v in over.items())}: it "
            f"was never clustered to {clusters}. Cluster it first with "
            f"qlab.training.clustering.cluster(model, data, "
            f"{clusters}), or use plain QAT (qlab.training.pruning.quantize_aware)"
        )


@contextlib.contextmanager
def _no_gradient_warnings():
    """Holds back TensorFlow's per-epoch "no gradient" warning: CQAT assigns each clustered kernel
    itself (`inputs.assign(output)` in tfmot's quantizer)."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def cluster_preserving_qat(
    model,
    data: Dataset,
    clusters: int,
    epochs: int = pruning.QAT_EPOCHS,
    learning_rate: float = pruning.QAT_LEARNING_RATE,
    batch_size: int = 32,
    seed: int = 0,
):
    """Cluster-preserving QAT (tfmot's `Default8BitClusterPreserveQuantizeScheme`) of a model
    clustered to `clusters`.

    Returns the trained QAT tf_keras model; its kernels hold the clustered weights. Raises
    ValueError for a model not clustered to `clusters` or layers QAT cannot wrap; TypeError for a
    model that is not tf_keras.
    """
    import tensorflow_model_optimization as tfmot

    qat.check_keras2(model)
    check_clustered(model, check_clusters(model, clusters))
    loss = fit.loss_for(model)
    fit.seed_everything(seed)
    scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
        preserve_sparsity=False
    )
    wrapped = pruning.with_scheme(model, scheme)
    with _no_gradient_warnings():
        pruning.fine_tune(wrapped, data, epochs, learning_rate, loss, batch_size)
    return wrapped


def centroids_per(qat_model) -> dict[str, str]:
    """Returns {layer name: "channel" or "tensor"}: whether CQAT holds one set of centroids per
    output channel or per kernel; layers it left alone are absent."""
    found = {}
    for layer in models.leaf_layers(qat_model):
        for weight in getattr(layer, "weights", []):
            if "cluster_centroids_tf" in weight.name:
                found[getattr(layer, "layer", layer).name] = (
                    "channel" if len(weight.shape) == 2 else "tensor"
                )
    return found
