"""``diffsys.systems``: differentiable components that whole systems are built from.

- :mod:`diffsys.systems.data`: data-pipeline stages (learnable blur, soft threshold,
  learnable normalization, bilinear resize and affine warps, colour jitter with learnable
  ranges), each an ``nn.Module`` and, where it has one, a relaxed/hard pair.

See docs/systems-data.md for the guide.
"""

from . import data, physics

__all__ = ["data", "physics"]
