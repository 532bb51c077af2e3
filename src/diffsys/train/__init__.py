"""``diffsys.train``: checkpoints (safetensors + JSON, atomic, verified), mini-batches from
an explicit seed, and ``fit``, a thin helper around the explicit training loop."""

from .checkpoint import (
    CheckpointError,
    CheckpointInfo,
    load_checkpoint,
    read_index,
    save_checkpoint,
)
from .data import endless_batches, epoch_permutation, iterate_batches, num_batches
from .loop import EarlyStopping, FitResult, fit

__all__ = [n for n in dir() if not n.startswith("_")]
