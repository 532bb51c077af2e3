"""``diffsys.systems``: differentiable components that whole systems are built from.

- :mod:`diffsys.systems.data`: data-pipeline stages (learnable blur, soft threshold,
  learnable normalization, bilinear resize and affine warps, colour jitter with learnable
  ranges), each an ``nn.Module`` and, where it has one, a relaxed/hard pair.
- :mod:`diffsys.systems.render`: a differentiable renderer on the CPU (soft rasterization of
  2-D shapes and triangle meshes, with exact hard forms); see docs/render.md.
- :mod:`diffsys.systems.logic`: Datalog with provenance semirings (docs/logic.md).
- :mod:`diffsys.systems.physics`: particles, springs and 2-D rigid bodies with smooth contact,
  simulated under ``ds.scan`` (docs/physics.md).
- ``diffsys.systems.nas`` (architecture search, docs/nas.md) and ``augment`` (learned
  augmentation policies, docs/augment.md) are imported on their own.
- ``diffsys.systems.db``, ``search`` (DuckDB, the ``db`` extra), ``runtime``, ``compiler`` and
  ``compress`` (learned compression, the ``compress`` extra) are imported on their own.

See docs/systems-data.md for the guide.
"""

from . import data, logic, physics, render

__all__ = ["data", "logic", "physics", "render"]
