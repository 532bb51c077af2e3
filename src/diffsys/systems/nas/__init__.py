"""``diffsys.systems.nas``: architecture search by continuous relaxation (DARTS).

- :mod:`.ops`: the candidate operations (:data:`CANDIDATES`: zero, skip, 3x3 max/average
  pooling, 3x3 and 5x5 convolutions, a dilated 3x3) and :func:`mixed_op`, the softmax
  mixture of their outputs as a ``relax.Relaxation`` whose hard form is the argmax one.
- :mod:`.exact`: :class:`Genotype` (one operation per edge of a cell), :func:`discretise`,
  parameter counts, :func:`random_genotypes` with a parameter budget.
- :mod:`.modules`: :class:`Supernet` (``relaxed``: every edge mixed; ``hard``: argmax
  operation per edge) and :class:`DiscreteNet`.
- :mod:`.train`: :func:`search` (bilevel: architecture on validation batches through
  :func:`diffsys.optim.unrolled_hypergradient`, weights on training batches), :func:`train`,
  :func:`accuracy`, :func:`mean_loss`.
- :mod:`.stages`: :func:`supernet_stage` (kind ``relaxed``: ``pipe.mismatch`` reports the
  relaxed-vs-discretised gap), :func:`network_stage`.

See docs/nas.md.
"""

from .exact import (
    Genotype,
    discretise,
    edge_list,
    network_parameter_count,
    op_parameter_count,
    random_genotypes,
)
from .modules import DiscreteNet, Supernet
from .ops import CANDIDATES, apply_candidate, mixed_op, mixing_weights
from .stages import network_stage, supernet_stage
from .train import SearchResult, accuracy, mean_loss, search, train

__all__ = [
    "CANDIDATES",
    "DiscreteNet",
    "Genotype",
    "SearchResult",
    "Supernet",
    "accuracy",
    "apply_candidate",
    "discretise",
    "edge_list",
    "mean_loss",
    "mixed_op",
    "mixing_weights",
    "network_parameter_count",
    "network_stage",
    "op_parameter_count",
    "random_genotypes",
    "search",
    "supernet_stage",
    "train",
]
