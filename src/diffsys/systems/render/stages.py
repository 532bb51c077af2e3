"""Ready-made :class:`diffsys.pipeline.Stage` builders for the renderer (kind ``relaxed``).

Each stage runs the soft renderer in training and the exact one at inference, so
``pipe.mismatch(batch)`` reports what the relaxation costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...pipeline import Stage
from .mesh import Camera
from .mesh_ops import Light, rasterize_mesh
from .ops import rasterize

__all__ = ["mesh_stage", "raster_stage"]


def raster_stage(
    name: str,
    size: tuple[int, int],
    temperature: float = 0.5,
    *,
    background: Any = None,
    margin: float | None = 8.0,
    inputs: str | Sequence[str] | None = None,
) -> Stage:
    """A stage drawing its input (a shape batch or a list of them) into ``(H, W, C)``:
    :func:`rasterize` in training, ``rasterize.hard`` at inference.

    >>> import numpy as np
    >>> from diffsys.systems.render import Circles
    >>> stage = raster_stage("draw", (8, 8), 0.5)
    >>> stage.kind
    'relaxed'
    """
    fn = rasterize.partial(size=tuple(size), temperature=temperature, background=background,
                           margin=margin)
    return Stage(name, fn, kind="relaxed", inputs=inputs)


def mesh_stage(
    name: str,
    faces: np.ndarray,
    camera: Camera,
    size: tuple[int, int],
    colors: Any = None,
    light: Light | None = None,
    temperature: float = 0.5,
    *,
    gamma: float = 1e-2,
    background: Any = None,
    cull_backfaces: bool = False,
    inputs: str | Sequence[str] | None = None,
) -> Stage:
    """A stage rendering its input, mesh vertices ``(V, 3)``, into ``(H, W, C + 1)``:
    :func:`rasterize_mesh` in training, the z-buffer at inference."""
    fn = rasterize_mesh.partial(
        faces=np.asarray(faces), camera=camera, size=tuple(size), colors=colors, light=light,
        temperature=temperature, gamma=gamma, background=background,
        cull_backfaces=cull_backfaces,
    )
    return Stage(name, fn, kind="relaxed", inputs=inputs)
