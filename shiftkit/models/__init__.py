"""Model zoo with normalization/activation/init knobs, and the ``ShiftClassifier`` LightningModule.

The plain-torch parts (``zoo``, ``layers``, ``norms``) import no Lightning; ``ShiftClassifier`` is
imported lazily, so distributed test workers and plain training loops stay light.

Example:
    >>> from shiftkit.models import build_model
    >>> net = build_model("resnet", input_shape=(3, 32, 32), num_classes=10, norm="batch",
    ...                   depth=20, width=0.25)
"""

from shiftkit.models.layers import ACTIVATIONS, INITS, NORMS, LayerKnobs, init_weights
from shiftkit.models.norms import (
    BatchNoise,
    CPUSyncBatchNorm,
    GhostBatchNorm,
    NoisyBatchNorm,
    convert_sync_batchnorm,
)
from shiftkit.models.zoo import ARCHITECTURES, build_model

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "INITS",
    "NORMS",
    "BatchNoise",
    "GhostBatchNorm",
    "LayerKnobs",
    "NoisyBatchNorm",
    "ShiftClassifier",
    "CPUSyncBatchNorm",
    "build_model",
    "convert_sync_batchnorm",
    "init_weights",
]


def __getattr__(name):
    # Lazy: importing Lightning costs seconds, and the zoo does not need it.
    if name == "ShiftClassifier":
        from shiftkit.models.classifier import ShiftClassifier

        return ShiftClassifier
    raise AttributeError(f"module 'shiftkit.models' has no attribute {name!r}")
