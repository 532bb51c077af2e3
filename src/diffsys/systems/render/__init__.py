"""``diffsys.systems.render``: a differentiable renderer on the CPU (NumPy).

2-D: :class:`Circles`, :class:`Polygons`, :class:`Strokes` with colour and opacity,
soft-rasterized by :func:`rasterize` (coverage ``sigmoid(signed distance / sigma)``, ``over``
compositing in draw order), a relaxation whose ``.hard`` form is exact centre sampling.
Work and memory grow with the pixel-shape pairs within ``margin * sigma`` of a shape's
bounding box (:func:`raster_cost` reports them).

3-D: triangle meshes (:func:`icosphere`, :func:`box`, :func:`torus`), a pinhole
:class:`Camera` (:func:`look_at`), poses (:func:`pose`, :func:`rotation_matrix`,
:func:`quaternion_matrix`), and :func:`rasterize_mesh` (SoftRas-style coverage, softmax depth
aggregation, perspective-correct colours, Lambert + ambient :class:`Light`, silhouette), whose
``.hard`` form is a z-buffer. :func:`raster_stage` and :func:`mesh_stage` make pipeline stages
(kind ``relaxed``). :func:`load_mesh` / :func:`save_mesh` read and write OBJ, PLY and the
other formats trimesh knows (the ``mesh`` extra). See docs/render.md.
"""

from .exact import bbox_pairs, even_odd_inside, layer_plan, rasterize_exact_2d
from .mesh import (
    Camera,
    box,
    face_normals,
    icosphere,
    look_at,
    pose,
    project,
    quaternion_matrix,
    rotation_matrix,
    torus,
)
from .mesh_io import MeshData, load_mesh, save_mesh
from .mesh_ops import Light, MeshCost, mesh_cost, rasterize_mesh
from .ops import RasterCost, raster_cost, rasterize
from .prims import gather_rows, segment_sum
from .shapes import Circles, Polygons, Strokes
from .stages import mesh_stage, raster_stage

__all__ = [
    "Camera",
    "Circles",
    "Light",
    "MeshCost",
    "MeshData",
    "Polygons",
    "RasterCost",
    "Strokes",
    "bbox_pairs",
    "box",
    "even_odd_inside",
    "face_normals",
    "gather_rows",
    "icosphere",
    "layer_plan",
    "load_mesh",
    "look_at",
    "mesh_cost",
    "mesh_stage",
    "pose",
    "project",
    "quaternion_matrix",
    "raster_cost",
    "raster_stage",
    "rasterize",
    "rasterize_exact_2d",
    "rasterize_mesh",
    "rotation_matrix",
    "save_mesh",
    "segment_sum",
    "torus",
]
