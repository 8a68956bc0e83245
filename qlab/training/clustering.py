"""Weight clustering with tensorflow-model-optimization, and cluster-preserving QAT after it.

`cluster(model, data, clusters)` copies a trained float model, wraps it with tfmot's
`cluster_weights` (`clusters` centroids per kernel, initialised by k-means++: tfmot's default,
deterministic, its seed is fixed at 9 in `clustering_centroids.py`), fine-tunes it (each weight
takes its centroid's value; the centroids train) and returns it stripped (`strip_clustering`): a
plain tf_keras model whose every Conv and Dense kernel holds at most `clusters` distinct values.
Biases, BatchNorm and DepthwiseConv2D weights are not clustered (`clustering_registry.py`).

`cluster_preserving_qat(clustered, data, clusters)` fine-tunes it with tfmot's
`Default8BitClusterPreserveQuantizeScheme` (CQAT): the centroids train, every weight keeps its
centroid. How tfmot counts the centroids matters for what "preserved" means: for a Conv2D whose
output channels hold nearly the same number of distinct values (at most one apart), CQAT takes
each channel's values as that channel's own centroids (`get_centroids` in
`cluster_preserve_quantize_registry.py`), since a conv's int8 weights have one scale per channel;
the channels' centroids then train apart, so the kernel ends with at most `clusters` values per
output channel, up to `clusters` × channels in all. Dense kernels keep one set of centroids.
`centroids_per` reads which way tfmot went for each layer.

Plain QAT after clustering is `qlab.training.pruning.quantize_aware(clustered, data)`. The model passed in
is never changed; every call is seeded and built inside `qlab.training.models.fresh_names`.
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
[97.3-98.2], the float models' 97.8 % [96.9-98.2]; at 1e-3, seed 0 fell to 95.1 % (Keras), 97.3 % at 3e-4."""
CENTROID_INIT = "KMEANS_PLUS_PLUS"
"""tfmot's default centroid initialisation (its others: LINEAR, DENSITY_BASED, RANDOM)."""


def check_clusters(model, clusters) -> int:
    """A cluster count `model` can take: a whole number of at least 2 and fewer than the weights of
    every kernel tfmot clusters (tfmot itself skips, with a warning, a Conv2D with as many or fewer).

    Returns:
        the count as an int.

    Raises:
        ValueError: not a whole number, below 2, or not fewer than the weights of a layer (named,
            with the largest count it takes).
    """
    if isinstance(clusters, bool) or not isinstance(clusters, (int, np.integer)) or clusters < 2:
        raise ValueError(
            f"clusters must be a whole number of 2 or more (one centroid leaves every weight equal), "
            f"got {clusters!r}"
        )
    small = {name: k.size for name, k in pruning.kernels(model).items() if k.size <= clusters}
    if small:
        raise ValueError(
            f"{clusters} clusters are not fewer than the weights of layer "
            f"{', '.join(f'{n!r} ({s})' for n, s in small.items())} of model {model.name!r}, and tfmot "
            f"needs more weights than clusters: pass at most {min(small.values()) - 1}"
        )
    return int(clusters)


def check_clusterable(model) -> None:
    """Refuse models tfmot cannot cluster, before any wrapping: layers outside its clustering
    registry (`clustering_registry.py`) and recurrent layers, each named.

    Raises:
        TypeError, ValueError: as `qlab.training.pruning.refuse_layers`.
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
    """Cluster the kernels of a trained float model, fine-tune, and strip the wrappers.

    Args:
        clusters: centroids per kernel (tfmot's `number_of_clusters`).
        init: the centroid initialisation, a name of tfmot's `CentroidInitialization`.

    Returns:
        a new plain tf_keras model, the same layers and names, each Conv and Dense kernel holding at
        most `clusters` distinct values.

    Raises:
        ValueError: a bad cluster count (`check_clusters`), an unknown init, a recurrent layer or
            one tfmot cannot cluster (named).
        TypeError: not a tf_keras model.
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
    """How many distinct values each kernel holds, in all and per output channel (see
    `qlab.training.pruning.kernels` for which kernels).

    Returns:
        {layer name: (distinct values in the kernel, the most any output channel holds)}.
    """
    return {
        name: (len(np.unique(k)), max(len(np.unique(k[..., c])) for c in range(k.shape[-1])))
        for name, k in pruning.kernels(model).items()
    }


def check_clustered(model, clusters: int) -> None:
    """Refuse cluster-preserving QAT for a model that was not clustered to `clusters`: a kernel
    holding more distinct values than that was never clustered (tfmot would take every value as
    a centroid, or give up past 1,024 with a warning).

    Raises:
        ValueError: the kernels with more values than `clusters`, and what to do.
    """
    over = {name: n for name, (n, _) in unique_values(model).items() if n > clusters}
    if over:
        raise ValueError(
            f"cluster-preserving QAT keeps the clusters of a clustered model, and model {model.name!r} has more "
            f"than {clusters} distinct values in kernel {', '.join(f'{n} ({v:,})' for n, v in over.items())}: it "
            f"was never clustered to {clusters}. Cluster it first with qlab.training.clustering.cluster(model, data, "
            f"{clusters}), or use plain QAT (qlab.training.pruning.quantize_aware)"
        )


@contextlib.contextmanager
def _no_gradient_warnings():
    """CQAT assigns each clustered kernel itself (`inputs.assign(output)` in tfmot's quantizer),
    so TensorFlow warns on every epoch that the kernels get no gradient: by design, held back."""
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
    """Cluster-preserving quantization-aware training (CQAT) of a clustered model.

    Args:
        clusters: the count the model was clustered to (checked: `check_clustered`).

    Returns:
        the trained QAT tf_keras model (fake-quant wrappers on); its kernels hold the clustered
        weights (`qlab.training.pruning.kernels` reads them), what the converter quantizes.

    Raises:
        ValueError: a model not clustered to `clusters`, or layers tfmot's QAT cannot wrap, named.
        TypeError: not a tf_keras model.
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
    """How tfmot's CQAT holds each layer's centroids: one set per output channel or one per kernel.

    Returns:
        {layer name: "channel" (a 2-D centroid variable, one row per channel) or "tensor"}, for the
        layers CQAT clusters; a layer it left alone (too many values, or none) is absent.
    """
    found = {}
    for layer in models.leaf_layers(qat_model):
        for weight in getattr(layer, "weights", []):
            if "cluster_centroids_tf" in weight.name:
                found[getattr(layer, "layer", layer).name] = (
                    "channel" if len(weight.shape) == 2 else "tensor"
                )
    return found
